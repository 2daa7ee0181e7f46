/* calls: tries each system call fwrun promises to refuse, with arguments
 * that change nothing should the call go through (an invalid handle, an
 * invalid segment count and flags, a bad command or attribute, a path that
 * does not exist, an I/O privilege level that does not exist), and prints
 * one line for each: "NAME: ERRNO" (its errno's name, EPERM when refused)
 * or "NAME: allowed". tests/confinement.rs checks every one is EPERM and
 * that fwrun's report lists the call. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *name_of(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case ESTALE: return "ESTALE";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case E2BIG: return "E2BIG";
	default: return strerror(e);
	}
}

static void say(const char *name, long r)
{
	if (r == 0 || (r > 0 && strcmp(name, "open_by_handle_at") != 0))
		printf("%s: allowed\n", name);
	else if (r > 0)
		printf("%s: allowed (fd %ld)\n", name, r);
	else
		printf("%s: %s\n", name, name_of(errno));
}

int main(void)
{
	/* A handle of no file: 8 bytes of zeros, type 0 (ESTALE at worst). */
	struct {
		unsigned int bytes;
		int type;
		unsigned char h[8];
	} handle = { 8, 0, { 0 } };
	say("open_by_handle_at", syscall(SYS_open_by_handle_at, -100, &handle, 0));
	/* 17 segments (one more than KEXEC_SEGMENT_MAX) and an unknown flag:
	 * EINVAL before anything is read or loaded. */
	say("kexec_load", syscall(SYS_kexec_load, 0UL, 17UL, NULL, 0x40000000UL));
	/* An unknown command, no attribute. */
	say("bpf", syscall(SYS_bpf, 0x7fff, NULL, 0));
	/* No attribute to read (EFAULT). */
	say("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	/* An unknown operation. */
	say("keyctl", syscall(SYS_keyctl, 0x7fff, 0, 0, 0, 0));
	/* A key of no known type. */
	say("add_key", syscall(SYS_add_key, "fwrun-no-such-type", "x", "", 0, -2));
	/* Accounting to a file that does not exist (ENOENT); never NULL,
	 * which would switch the host's accounting off. */
	say("acct", syscall(SYS_acct, "/nonexistent/fwrun-acct"));
#ifdef SYS_iopl
	/* Level 4 does not exist (EINVAL). */
	say("iopl", syscall(SYS_iopl, 4));
#endif
#ifdef SYS_ioperm
	/* Ports past the 65536 there are (EINVAL). */
	say("ioperm", syscall(SYS_ioperm, 0x10000UL, 1UL, 1));
#endif
	return 0;
}
