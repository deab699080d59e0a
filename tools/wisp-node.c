/* wisp-node: run a wisp node.
 *
 * This first version runs the self-check: it starts a node, drives probes
 * through the actors and every worker for a while, prints the runtime's
 * figures, stops cleanly and checks that nothing was left behind. */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wisp/wisp.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wisp-node --self-check [--workers N] [--duration SECONDS] [--json]\n"
		"\n"
		"  --self-check        start a node, send probes through the telemetry actor and\n"
		"                      every worker for --duration seconds, print the runtime's\n"
		"                      figures (probe round trips, per-thread messages, wakeups,\n"
		"                      sleeps, CPU), stop, and check nothing leaked\n"
		"  --workers N         network worker threads (default: online CPUs)\n"
		"  --duration SECONDS  how long to probe (default 2)\n"
		"  --json              one JSON object per line instead of text\n"
		"  --help              this text\n"
		"\n"
		"Exit status: 0 ok, 1 the check failed, 2 usage, 3 the node could not start\n"
		"(for example io_uring disabled: the message names the errno).\n");
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#define MAX_SAMPLES 200000

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "self-check", no_argument, NULL, 's' }, { "workers", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int self_check = 0, json = 0, c;
	long workers = 0;
	double duration = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 's': self_check = 1; break;
		case 'j': json = 1; break;
		case 'w':
			workers = strtol(optarg, &end, 10);
			if (*end || workers < 1 || workers > 64) {
				fprintf(stderr, "wisp-node: --workers takes 1..64, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
			duration = strtod(optarg, &end);
			if (*end || duration <= 0 || duration > 3600) {
				fprintf(stderr, "wisp-node: --duration takes seconds in (0, 3600], not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!self_check || optind != argc) {
		usage(stderr);
		return 2;
	}

	wisp_options o;
	wisp_options_default(&o);
	o.workers = (uint32_t)workers;
	o.stats_interval_ms = 1000;
	wisp_node *n;
	int err = wisp_node_new(&n, &o);
	if (err) {
		fprintf(stderr, "wisp-node: cannot create the node: %s %s\n", wisp_errname(err), wisp_strerror(err));
		return 3;
	}
	if ((err = wisp_node_start(n)) != WISP_OK) {
		fprintf(stderr, "wisp-node: cannot start: %s: %s\n", wisp_errname(err), wisp_node_errmsg(n));
		wisp_node_free(n);
		return 3;
	}
	wisp_stats st;
	wisp_node_stats(n, &st);
	if (json)
		printf("{\"event\":\"started\",\"workers\":%u,\"threads\":%u,\"uring_flags\":%u,\"msg_ring\":%d}\n",
		       st.threads - 1, st.threads, st.uring_flags, st.uring_msg_ring);
	else
		printf("wisp-node %s self-check: %u workers + 1 actor thread, io_uring flags 0x%x "
		       "(SINGLE_ISSUER %s, DEFER_TASKRUN %s), MSG_RING wakeups %s\n",
		       WISP_VERSION_STRING, st.threads - 1, st.uring_flags, st.uring_flags & (1u << 12) ? "on" : "off",
		       st.uring_flags & (1u << 13) ? "on" : "off", st.uring_msg_ring ? "on" : "off");

	/* Probes, 32 in flight at a time, until the duration is over. */
	uint64_t *rtt = malloc(MAX_SAMPLES * sizeof(*rtt));
	if (!rtt)
		return 1;
	size_t samples = 0, answered = 0, failed = 0, refused = 0, stats_events = 0;
	uint64_t t_end = now_ns() + (uint64_t)(duration * 1e9), cookie = 0;
	unsigned in_flight = 0;
	int fd = wisp_node_event_fd(n);
	while (now_ns() < t_end || in_flight) {
		while (in_flight < 32 && now_ns() < t_end) {
			if (wisp_node_probe(n, ++cookie) != WISP_OK) {
				refused++;
				break;
			}
			in_flight++;
		}
		wisp_event ev;
		int got = 0;
		while (wisp_node_next_event(n, &ev) == 1) {
			got = 1;
			if (ev.type == WISP_EVENT_PROBE) {
				in_flight--;
				if (ev.status != WISP_OK)
					failed++;
				else if (answered++ < MAX_SAMPLES)
					rtt[samples++] = ev.u.probe->done - ev.u.probe->sent;
			} else if (ev.type == WISP_EVENT_STATS && ev.status == WISP_OK) {
				stats_events++;
				const wisp_stats *s = ev.u.stats;
				uint64_t msgs = 0;
				for (uint32_t i = 0; i < s->threads; i++)
					msgs += s->thread[i].msgs;
				if (json)
					printf("{\"event\":\"stats\",\"msgs\":%llu,\"pool_in_use\":%llu}\n",
					       (unsigned long long)msgs, (unsigned long long)s->pool_in_use);
				else
					printf("  [stats] %llu mailbox messages so far, %llu buffers in use\n",
					       (unsigned long long)msgs, (unsigned long long)s->pool_in_use);
			}
			wisp_event_release(n, &ev);
		}
		if (!got) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, 100);
		}
	}
	wisp_node_stats(n, &st);
	wisp_node_stop(n);
	/* Events queued before the stop (a late stats snapshot) hold buffers
	 * until the application takes them. */
	wisp_event ev;
	while (wisp_node_next_event(n, &ev) == 1) {
		if (ev.type == WISP_EVENT_PROBE && ev.status != WISP_OK)
			failed++;
		wisp_event_release(n, &ev);
	}
	wisp_stats after;
	wisp_node_stats(n, &after);

	qsort(rtt, samples, sizeof(*rtt), cmp_u64);
	double p50 = samples ? rtt[samples / 2] / 1e3 : 0, p99 = samples ? rtt[samples * 99 / 100] / 1e3 : 0;
	if (json) {
		printf("{\"event\":\"probes\",\"ok\":%zu,\"failed\":%zu,\"refused\":%zu,\"rtt_p50_us\":%.1f,"
		       "\"rtt_p99_us\":%.1f}\n",
		       answered, failed, refused, p50, p99);
	} else {
		printf("probes: %zu answered by every worker, %zu failed, %zu refused (mailbox full); "
		       "round trip p50 %.1f us, p99 %.1f us\n",
		       answered, failed, refused, p50, p99);
		printf("%-8s %4s %12s %10s %10s %10s %10s\n", "thread", "cpu", "messages", "wakeups", "sleeps",
		       "turns", "cpu_ms");
	}
	for (uint32_t i = 0; i < st.threads; i++) {
		const wisp_thread_stats *t = &st.thread[i];
		char name[16];
		snprintf(name, sizeof(name), "%s%u", t->kind == WISP_THREAD_WORKER ? "worker" : "actors",
			 t->kind == WISP_THREAD_WORKER ? i : i - (st.threads - 1));
		if (json)
			printf("{\"event\":\"thread\",\"name\":\"%s\",\"cpu\":%d,\"msgs\":%llu,\"wakeups\":%llu,"
			       "\"sleeps\":%llu,\"turns\":%llu,\"cpu_ns\":%llu}\n",
			       name, t->cpu, (unsigned long long)t->msgs, (unsigned long long)t->wakeups,
			       (unsigned long long)t->sleeps, (unsigned long long)t->turns,
			       (unsigned long long)t->cpu_ns);
		else
			printf("%-8s %4d %12llu %10llu %10llu %10llu %10.1f\n", name, t->cpu,
			       (unsigned long long)t->msgs, (unsigned long long)t->wakeups,
			       (unsigned long long)t->sleeps, (unsigned long long)t->turns, t->cpu_ns / 1e6);
	}
	int ok = samples > 0 && failed == 0 && after.pool_in_use == 0 && after.events_dropped == 0;
	if (json)
		printf("{\"event\":\"stopped\",\"ok\":%s,\"mailbox_full\":%llu,\"events_dropped\":%llu,"
		       "\"discarded\":%llu,\"pool_in_use\":%llu,\"pool_high\":%llu,\"stats_events\":%zu}\n",
		       ok ? "true" : "false", (unsigned long long)after.mailbox_full,
		       (unsigned long long)after.events_dropped, (unsigned long long)after.discarded,
		       (unsigned long long)after.pool_in_use, (unsigned long long)after.pool_high, stats_events);
	else
		printf("stopped: %llu sends refused (full), %llu events dropped, %llu messages discarded at stop, "
		       "%llu buffers still held (high water %llu): %s\n",
		       (unsigned long long)after.mailbox_full, (unsigned long long)after.events_dropped,
		       (unsigned long long)after.discarded, (unsigned long long)after.pool_in_use,
		       (unsigned long long)after.pool_high, ok ? "self-check passed" : "SELF-CHECK FAILED");
	free(rtt);
	wisp_node_free(n);
	return ok ? 0 : 1;
}
