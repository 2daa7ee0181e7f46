/* remount PATH [dev]: a bind remount of the mount at PATH, read-write
 * (with "dev": a plain remount, no MS_BIND, without nodev), as mount(2)
 * is asked, with PATH as given: no lookup in /proc/mounts, so that a path
 * through a magic link (/proc/1/root/...) reaches the kernel as it is.
 * Exits 0 if the kernel did it, 1 (saying why) if not. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	unsigned long flags = MS_REMOUNT | MS_BIND;
	if (argc > 2 && strcmp(argv[2], "dev") == 0)
		flags = MS_REMOUNT;
	if (mount(NULL, argv[1], NULL, flags, NULL) != 0) {
		fprintf(stderr, "remount %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return 0;
}
