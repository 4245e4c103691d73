// Text from outside (a trace file's strings, file names, flag values) is printed through this, so a
// crafted string cannot move the cursor, clear the screen or forge a line of output: control
// characters (C0, DEL, C1) and the bidirectional overrides become visible escapes like `\u001b`.

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control or bidi character written as `\n`, `\t` or `\uXXXX`. */
export function printable(s: string): string {
  return s.replace(UNSAFE, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}
