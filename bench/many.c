/* bench/notifysyscalls.sh and bench/permcounts.sh's load of distinct files. Build: cc -O2 -o many bench/many.c */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* many DIR N [create]: open()+close() DIR/fI for I in 0..N-1, each once (or create them). */
int main(int argc, char **argv) {
	int n = atoi(argv[2]); char p[4096];
	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/f%d", argv[1], i);
		int fd = argc > 3 ? open(p, O_CREAT | O_WRONLY, 0644) : open(p, O_RDONLY);
		if (fd < 0) { perror(p); return 1; }
		close(fd);
	}
	return 0;
}
