// SPDX-License-Identifier: GPL-2.0-only
/*
 * pkvm-check's in-guest agent: the initramfs's /init.
 *
 * It relays batches between the checker on the host side (a virtio-serial
 * port) and /dev/pkvm_check, and does nothing else: the checker encodes the
 * ops and decodes the results. Framing, both ways: a little-endian u32 count,
 * then that many struct pkvm_check_op (to the guest) or struct
 * pkvm_check_res (from the guest). A count of 0 powers the machine off.
 * At start the agent sends the result of a HELLO op unasked: the checker
 * waits for it before sending anything.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/pkvm_check.h>

static struct pkvm_check_op ops[PKVM_CHECK_MAX_OPS];
static struct pkvm_check_res res[PKVM_CHECK_MAX_OPS];

static void die(const char *what)
{
	fprintf(stderr, "pkvm-check agent: %s: %s\n", what, strerror(errno));
	sync();
	reboot(RB_POWER_OFF);
	_exit(1);
}

static void read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read from the host");
		p += n;
		len -= n;
	}
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write to the host");
		p += n;
		len -= n;
	}
}

/* The virtio-serial port: /dev/vportNpM (devtmpfs names it; no udev here). */
static int open_port(void)
{
	for (int tries = 0; tries < 500; tries++) {
		DIR *d = opendir("/dev");
		struct dirent *e;
		char path[300];

		while (d && (e = readdir(d))) {
			if (strncmp(e->d_name, "vport", 5))
				continue;
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			closedir(d);
			return open(path, O_RDWR);
		}
		if (d)
			closedir(d);
		usleep(10000);
	}
	errno = ENOENT;
	return -1;
}

static void run(int dev, int port, uint32_t n)
{
	if (write(dev, ops, n * sizeof(ops[0])) < 0)
		die("write /dev/pkvm_check");
	if (read(dev, res, n * sizeof(res[0])) < 0)
		die("read /dev/pkvm_check");
	write_all(port, &n, sizeof(n));
	write_all(port, res, n * sizeof(res[0]));
}

int main(void)
{
	int dev, port;
	uint32_t n;

	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) && errno != EBUSY)
		die("mount /dev");
	dev = open("/dev/pkvm_check", O_RDWR);
	if (dev < 0)
		die("open /dev/pkvm_check");
	port = open_port();
	if (port < 0)
		die("open the virtio-serial port");

	ops[0] = (struct pkvm_check_op){ .op = PKVM_CHECK_HELLO };
	run(dev, port, 1);
	for (;;) {
		read_all(port, &n, sizeof(n));
		if (n == 0 || n > PKVM_CHECK_MAX_OPS)
			break;
		read_all(port, ops, n * sizeof(ops[0]));
		run(dev, port, n);
	}
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
