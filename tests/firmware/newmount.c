/* Mounts proc at /proc as util-linux 2.39 and later do: the new mount API
 * first (fsopen), mount(2) when the kernel answers ENOSYS. Prints ok/not ok
 * lines; exits with the number of failures. */
#include <errno.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	int fails = 0;
	long fd = syscall(SYS_fsopen, "proc", 0);
	if (fd < 0 && errno == ENOSYS) {
		printf("ok - fsopen answers ENOSYS\n");
	} else {
		printf("not ok - fsopen answers ENOSYS (got %ld, errno %d)\n", fd, errno);
		fails++;
	}
	if (mount("proc", "/proc", "proc", 0, NULL) == 0) {
		printf("ok - the fallback mount(2) of proc at /proc succeeds\n");
	} else {
		printf("not ok - the fallback mount(2) of proc at /proc (errno %d)\n", errno);
		fails++;
	}
	return fails;
}
