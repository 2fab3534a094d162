// execref MNT [calls TRUSTFILE]: an allow-all responder in C on MNT's whole mount (what
// `guard --mount --events open,exec` and fapolicyd mark). bench/exec.sh runs it twice:
//
//   execref MNT        answers FAN_OPEN_EXEC_PERM and FAN_OPEN_PERM: read, answer, close,
//                      nothing else. The floor of any listener that answers the two permission
//                      events an exec of a file on that mount raises (fanref answers
//                      FAN_OPEN_PERM only). FAN_ALL_PERM_EVENTS does not include
//                      FAN_OPEN_EXEC_PERM: an event of a kind not answered here would leave the
//                      exec blocked.
//   execref MNT calls TRUSTFILE
//                      the system calls the guard makes for an exec under a trust-based exec
//                      allowlist (`allow exec ** trusted=yes`, `deny exec **`), in C and
//                      nothing else: it asks only FAN_OPEN_EXEC_PERM (as the guard does when
//                      the policy allows every open: docs/security.md, "Kinds of access no rule
//                      decides"), and per event makes the statx of the descriptor (the object's
//                      identity), the readlink of /proc/self/fd/N relative to a descriptor of
//                      /proc/self/fd opened once (its path), the statx of that path (that it
//                      leads back to the same inode), the fstat of the descriptor (the trust
//                      hash cache's identity check), then looks the path up in TRUSTFILE's one
//                      entry (PATH SIZE SHA256; the digest is not computed: the guard's comes
//                      from its hash cache) and answers allow if the path and size match, deny
//                      otherwise. The floor of a listener that decides what the guard decides
//                      the way it decides it (the path read and checked, the file identified).
// Build: cc -O2 -o execref execref.c; run as root; prints "ready", then "events N" on SIGTERM.
#define _GNU_SOURCE
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }

static char trust_path[PATH_MAX];
static long long trust_size = -1;
static int proc_self_fd = -1;

// decide is the calls mode's decision for event descriptor fd: allow (1) if its path, read
// and checked as the guard does, is the trust file's and its size is the entry's.
static int decide(int fd) {
	struct statx id, again, byname;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, &id) < 0) return 0;
	char name[24], path[PATH_MAX];
	snprintf(name, sizeof name, "%d", fd);
	ssize_t n = readlinkat(proc_self_fd, name, path, sizeof path - 1);
	if (n <= 0) return 0;
	path[n] = 0;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &byname) < 0) return 0;
	if (byname.stx_ino != id.stx_ino || byname.stx_dev_major != id.stx_dev_major || byname.stx_dev_minor != id.stx_dev_minor) return 0;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &again) < 0) return 0;
	return strcmp(path, trust_path) == 0 && (long long)again.stx_size == trust_size;
}

int main(int argc, char **argv) {
	int calls = argc == 4 && strcmp(argv[2], "calls") == 0;
	if (argc != 2 && !calls) { fprintf(stderr, "usage: execref MNT [calls TRUSTFILE]\n"); return 2; }
	if (calls) {
		FILE *tf = fopen(argv[3], "r");
		if (!tf || fscanf(tf, "%4095s %lld", trust_path, &trust_size) != 2) { fprintf(stderr, "execref: cannot read %s\n", argv[3]); return 1; }
		fclose(tf);
		proc_self_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (proc_self_fd < 0) { perror("/proc/self/fd"); return 1; }
	}
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fd < 0) { perror("fanotify_init"); return 1; }
	uint64_t mask = calls ? FAN_OPEN_EXEC_PERM : FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM;
	if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, mask, AT_FDCWD, argv[1]) < 0) { perror("fanotify_mark"); return 1; }
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);
	printf("ready\n"); fflush(stdout);
	static char buf[1 << 16] __attribute__((aligned(8)));
	long events = 0, denied = 0;
	while (!stop) {
		ssize_t len = read(fd, buf, sizeof buf);
		if (len <= 0) break;
		struct fanotify_event_metadata *m = (void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			if (m->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_ACCESS_PERM)) {
				uint32_t verdict = FAN_ALLOW;
				if (calls && m->fd >= 0 && !decide(m->fd)) { verdict = FAN_DENY; denied++; }
				struct fanotify_response r = { .fd = m->fd, .response = verdict };
				if (write(fd, &r, sizeof r) != sizeof r) perror("write response");
			}
			if (m->fd >= 0) close(m->fd);
			events++;
		}
	}
	printf("events %ld denied %ld\n", events, denied);
	return 0;
}
