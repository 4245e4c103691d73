// Where a text stops being JSON. JSON.parse's messages differ between Node versions and sometimes
// quote the whole input (many lines); this scanner finds the first error itself, so a trace file's
// error is always one line: "line L, column C: expected ..., found ...".

interface Syntax {
  readonly offset: number;
  readonly expected: string;
}

class JsonSyntaxError extends Error {
  constructor(readonly at: Syntax) {
    super(at.expected);
  }
}

class Scanner {
  i = 0;
  /** Where the first number literal that a double cannot hold exactly starts, or -1. */
  inexact = -1;
  constructor(readonly s: string) {}

  fail(expected: string): never {
    throw new JsonSyntaxError({ offset: this.i, expected });
  }

  ws(): void {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i])) this.i++;
  }

  value(): void {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
    for (const word of ['true', 'false', 'null']) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return;
      }
    }
    this.fail('a JSON value');
  }

  object(): void {
    this.i++;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('a double-quoted property name');
      this.string();
      this.ws();
      if (this.s[this.i] !== ':') this.fail("':' after a property name");
      this.i++;
      this.value();
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === '}') return;
      if (c !== ',') {
        this.i--;
        this.fail("',' or '}' after a property value");
      }
    }
  }

  array(): void {
    this.i++;
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return;
    }
    for (;;) {
      this.value();
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === ']') return;
      if (c !== ',') {
        this.i--;
        this.fail("',' or ']' after an array element");
      }
    }
  }

  string(): void {
    this.i++;
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) this.fail('a closing \'"\'');
      if (c === '"') {
        this.i++;
        return;
      }
      if (c < ' ') this.fail("an escape such as '\\n' instead of a raw control character");
      if (c === '\\') {
        const e = this.s[this.i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.s.slice(this.i + 2, this.i + 6))) this.fail('four hex digits after \\u');
          this.i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) this.fail('a valid escape sequence');
        this.i += 2;
        continue;
      }
      this.i++;
    }
  }

  number(): void {
    const re = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    re.lastIndex = this.i;
    const m = re.exec(this.s);
    if (!m) this.fail('a number');
    if (this.inexact < 0 && !exact(m[0])) this.inexact = this.i;
    this.i += m[0].length;
  }
}

/** Whether a JSON number literal reads back as itself: finite, and an integer only within ±(2^53 − 1). */
function exact(literal: string): boolean {
  const n = Number(literal);
  if (!Number.isFinite(n)) return false;
  return !/^-?[0-9]+$/.test(literal) || Number.isSafeInteger(n);
}

/**
 * In valid JSON `text`, the first number that JSON.parse would change (2^53 + 1 becomes 2^53, 1e400
 * becomes Infinity, printed as null): "line L, column C: the number 1e400 ...". Null when there is none.
 */
export function describeInexactNumber(text: string): string | null {
  const scan = new Scanner(text);
  try {
    scan.value();
  } catch {
    return null;
  }
  if (scan.inexact < 0) return null;
  const literal = /-?[0-9.eE+-]+/y;
  literal.lastIndex = scan.inexact;
  const before = text.slice(0, scan.inexact);
  const line = before.split('\n').length;
  const column = scan.inexact - (before.lastIndexOf('\n') + 1) + 1;
  return `line ${line}, column ${column}: the number ${literal.exec(text)?.[0] ?? '?'} cannot be read exactly (integers up to 2^53 - 1, finite numbers only)`;
}

/** Describes, in one line, where and why `text` is not JSON; null if it is. */
export function describeJsonError(text: string): string | null {
  const scan = new Scanner(text);
  let at: Syntax;
  try {
    scan.value();
    scan.ws();
    if (scan.i === text.length) return null;
    at = { offset: scan.i, expected: 'nothing after the JSON value' };
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) return 'nested too deeply to read';
    at = e.at;
  }
  const before = text.slice(0, at.offset);
  const line = before.split('\n').length;
  const column = at.offset - (before.lastIndexOf('\n') + 1) + 1;
  const found = at.offset < text.length ? JSON.stringify(String.fromCodePoint(text.codePointAt(at.offset) ?? 0)) : 'the end of the file';
  return `line ${line}, column ${column}: expected ${at.expected}, found ${found}`;
}
