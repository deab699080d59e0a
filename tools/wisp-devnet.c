/* wisp-devnet: a local Atlas validator network in one process.
 *
 * N wisp nodes on 127.0.0.1, each dialing a few others, all subscribed to
 * the four Atlas topics, run a toy consensus for --duration seconds:
 *   atlas/heartbeat/v1  every validator, once a second;
 *   atlas/proposal/v1   one proposer per round (round robin);
 *   atlas/vote/v1       every validator votes for each proposal it sees;
 *   atlas/tx/v1         transactions at --tx-rate per second, from random nodes.
 * Every payload starts with the publisher's index, a sequence number and the
 * send time, so each node can count what it received and the latency.
 * Prints a line of figures per second and a summary; exit 0 when every node
 * received every message of every topic (after a short settle at the start,
 * while the meshes form).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wisp/wisp.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_START = 3 };

#define MAX_NODES 64
#define TOPICS 4
static const char *const topic_names[TOPICS] = { "atlas/heartbeat/v1", "atlas/proposal/v1", "atlas/vote/v1",
						 "atlas/tx/v1" };

typedef struct payload {
	uint32_t from;
	uint32_t topic;
	uint64_t seq;
	uint64_t sent_ns;
	uint64_t round; /* proposals and votes */
} payload;

typedef struct node {
	wisp_node *n;
	char listen[WISP_ADDR_TEXT_MAX];
	uint32_t connected, subscribed;
	uint64_t received[TOPICS];
	uint64_t voted_round; /* the last round this node voted in */
} node;

static node nodes[MAX_NODES];
static uint32_t n_nodes = 8;
static uint64_t published[TOPICS];
static uint64_t published_counted[TOPICS]; /* after the settle time: every node must get these */
static uint64_t received_counted[TOPICS];
static uint64_t *lat;
static size_t n_lat, cap_lat;
static uint64_t window_msgs, publish_failures, publish_no_peers;
static volatile sig_atomic_t interrupted;
static uint64_t settle_ns, t0;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wisp-devnet [--nodes N] [--duration SECONDS] [--degree K] [--tx-rate N] [--json]\n"
		"\n"
		"Runs a local Atlas validator network in one process: N wisp nodes on 127.0.0.1\n"
		"(each dials K others), all subscribed to atlas/heartbeat/v1, atlas/proposal/v1,\n"
		"atlas/vote/v1 and atlas/tx/v1 (StrictSign, message id = SHA-256 of the data).\n"
		"Every second each validator publishes a heartbeat, one proposer a proposal,\n"
		"every validator a vote for each proposal it receives, and random validators\n"
		"--tx-rate transactions. Prints per-second figures (messages delivered,\n"
		"duplicates suppressed, gossip peers, publish-to-delivery latency) and a summary.\n"
		"\n"
		"  --nodes N         validators (default 8, at most 64)\n"
		"  --duration S      seconds of traffic after the meshes formed (default 10)\n"
		"  --degree K        connections each node dials (default 3)\n"
		"  --tx-rate N       transactions per second, network wide (default 200)\n"
		"  --json            JSON lines instead of text\n"
		"\n"
		"Exit status: 0 every node got every message published after the first second,\n"
		"1 some were missing, 2 usage, 3 a node could not start.\n");
}

static void on_message(uint32_t me, const wisp_message_info *m)
{
	if (m->len < sizeof(payload))
		return;
	payload p;
	memcpy(&p, m->data, sizeof(p));
	if (p.topic >= TOPICS)
		return;
	nodes[me].received[p.topic]++;
	window_msgs++;
	uint64_t now = now_ns();
	if (p.sent_ns >= t0 + settle_ns)
		received_counted[p.topic]++;
	if (n_lat == cap_lat) {
		size_t cap = cap_lat ? cap_lat * 2 : 65536;
		uint64_t *v = realloc(lat, cap * sizeof(*v));
		if (v) {
			lat = v;
			cap_lat = cap;
		}
	}
	if (n_lat < cap_lat)
		lat[n_lat++] = now - p.sent_ns;
	/* a validator votes for every proposal it sees, once per round */
	if (p.topic == 1 && nodes[me].voted_round < p.round + 1) {
		nodes[me].voted_round = p.round + 1;
		payload v = { .from = me, .topic = 2, .seq = p.round, .sent_ns = now_ns(), .round = p.round };
		if (wisp_publish(nodes[me].n, topic_names[2], &v, sizeof(v), 2) != WISP_OK)
			publish_failures++;
		else {
			published[2]++;
			if (v.sent_ns >= t0 + settle_ns)
				published_counted[2]++;
		}
	}
}

static void drain(void)
{
	for (uint32_t i = 0; i < n_nodes; i++) {
		wisp_event ev;
		while (wisp_node_next_event(nodes[i].n, &ev) == 1) {
			switch (ev.type) {
			case WISP_EVENT_LISTENING:
				snprintf(nodes[i].listen, sizeof(nodes[i].listen), "%s", ev.u.listen->addr);
				break;
			case WISP_EVENT_CONNECTED:
				nodes[i].connected++;
				break;
			case WISP_EVENT_SUBSCRIBED:
				if (!ev.status)
					nodes[i].subscribed++;
				break;
			case WISP_EVENT_MESSAGE:
				on_message(i, ev.u.message);
				break;
			case WISP_EVENT_PUBLISHED:
				if (ev.status == WISP_ERR_NOTFOUND)
					publish_no_peers++;
				else if (ev.status)
					publish_failures++;
				break;
			default:
				break;
			}
			wisp_event_release(nodes[i].n, &ev);
		}
	}
}

static void wait_events(int ms)
{
	struct pollfd p[MAX_NODES];
	for (uint32_t i = 0; i < n_nodes; i++)
		p[i] = (struct pollfd){ .fd = wisp_node_event_fd(nodes[i].n), .events = POLLIN };
	poll(p, n_nodes, ms);
	drain();
}

static void publish_one(uint32_t from, uint32_t topic, uint64_t seq, uint64_t round)
{
	payload p = { .from = from, .topic = topic, .seq = seq, .sent_ns = now_ns(), .round = round };
	uint8_t buf[sizeof(payload) + 64];
	memcpy(buf, &p, sizeof(p));
	size_t len = sizeof(p);
	if (topic == 3) { /* a transaction carries some bytes of its own */
		memset(buf + len, (int)(seq & 0xff), 64);
		len += 64;
	}
	if (wisp_publish(nodes[from].n, topic_names[topic], buf, len, 1) != WISP_OK) {
		publish_failures++;
		return;
	}
	published[topic]++;
	if (p.sent_ns >= t0 + settle_ns)
		published_counted[topic]++;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nodes", required_argument, NULL, 'n' }, { "duration", required_argument, NULL, 'd' },
		{ "degree", required_argument, NULL, 'k' }, { "tx-rate", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },          { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double duration = 10;
	long degree = 3, tx_rate = 200;
	int json = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'n':
			n_nodes = (uint32_t)strtoul(optarg, &end, 10);
			if (*end || n_nodes < 2 || n_nodes > MAX_NODES) {
				fprintf(stderr, "wisp-devnet: --nodes takes 2..%d\n", MAX_NODES);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			duration = strtod(optarg, &end);
			if (*end || duration <= 0 || duration > 3600) {
				fprintf(stderr, "wisp-devnet: --duration takes seconds in (0, 3600]\n");
				return EXIT_USAGE;
			}
			break;
		case 'k':
			degree = strtol(optarg, &end, 10);
			if (*end || degree < 1 || degree > 16) {
				fprintf(stderr, "wisp-devnet: --degree takes 1..16\n");
				return EXIT_USAGE;
			}
			break;
		case 't':
			tx_rate = strtol(optarg, &end, 10);
			if (*end || tx_rate < 0 || tx_rate > 100000) {
				fprintf(stderr, "wisp-devnet: --tx-rate takes 0..100000\n");
				return EXIT_USAGE;
			}
			break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	wisp_topic_opts to;
	wisp_topic_opts_default(&to);
	to.msgid = WISP_MSGID_CONTENT; /* the Atlas profile */
	for (uint32_t i = 0; i < n_nodes; i++) {
		wisp_options o;
		wisp_options_default(&o);
		o.workers = 1;
		o.pin_workers = 0; /* many nodes in one process share the CPUs */
		static const char *const addrs[] = { "/ip4/127.0.0.1/tcp/0" };
		o.listen = addrs;
		o.n_listen = 1;
		int err = wisp_node_new(&nodes[i].n, &o);
		if (!err)
			err = wisp_node_start(nodes[i].n);
		if (err) {
			fprintf(stderr, "wisp-devnet: node %u: %s: %s\n", i, wisp_strerror(err),
				nodes[i].n ? wisp_node_errmsg(nodes[i].n) : wisp_node_new_errmsg());
			return EXIT_START;
		}
		for (int t = 0; t < TOPICS; t++)
			(void)wisp_subscribe(nodes[i].n, topic_names[t], &to, 0);
	}
	uint64_t deadline = now_ns() + 10 * 1000000000ull;
	for (bool ok = false; !ok && now_ns() < deadline && !interrupted;) {
		wait_events(50);
		ok = true;
		for (uint32_t i = 0; i < n_nodes; i++)
			if (!nodes[i].listen[0] || nodes[i].subscribed < TOPICS)
				ok = false;
	}
	/* each node dials the next `degree` nodes around the ring */
	uint32_t dials = 0;
	for (uint32_t i = 0; i < n_nodes; i++)
		for (long k = 1; k <= degree && k < (long)n_nodes; k++) {
			uint32_t to_i = (i + (uint32_t)k) % n_nodes;
			if (wisp_dial(nodes[i].n, nodes[to_i].listen, 0) == WISP_OK)
				dials++;
		}
	if (json)
		printf("{\"event\":\"devnet\",\"nodes\":%u,\"dials\":%u,\"degree\":%ld,\"tx_rate\":%ld}\n", n_nodes, dials,
		       degree, tx_rate);
	else
		printf("wisp-devnet: %u validators on 127.0.0.1, %u connections, Atlas topics; %.0f s of traffic\n",
		       n_nodes, dials, duration);

	t0 = now_ns();
	settle_ns = 1500000000ull; /* meshes form on the first heartbeats */
	uint64_t end = t0 + (uint64_t)(duration * 1e9), next_sec = t0 + 1000000000ull, next_tx = t0;
	uint64_t round = 0, seq = 0, hb_seq = 0, tx_step = tx_rate ? 1000000000ull / (uint64_t)tx_rate : 0;
	uint64_t rng = t0 | 1, last_dups = 0;
	int second = 0;
	while (now_ns() < end && !interrupted) {
		uint64_t now = now_ns();
		if (now >= next_sec || second == 0) {
			/* a new second: heartbeats and a proposal */
			for (uint32_t i = 0; i < n_nodes; i++)
				publish_one(i, 0, hb_seq, 0);
			hb_seq++;
			publish_one((uint32_t)(round % n_nodes), 1, round, round);
			round++;
			if (second > 0) {
				wisp_stats st;
				uint64_t dups = 0, peers = 0;
				for (uint32_t i = 0; i < n_nodes; i++) {
					wisp_node_stats(nodes[i].n, &st);
					dups += st.gossip.msg_duplicate;
					peers += st.gossip.peers;
				}
				uint64_t p50 = 0;
				if (n_lat) {
					qsort(lat, n_lat, sizeof(*lat), cmp_u64);
					p50 = lat[n_lat / 2];
				}
				if (json)
					printf("{\"event\":\"second\",\"t\":%d,\"delivered\":%llu,\"duplicates\":%llu,"
					       "\"avg_peers\":%.1f,\"latency_p50_us\":%.0f}\n",
					       second, (unsigned long long)window_msgs,
					       (unsigned long long)(dups - last_dups), (double)peers / n_nodes, p50 / 1e3);
				else
					printf("  t=%2ds  %7llu messages delivered  %6llu duplicates dropped  %4.1f gossip peers/node  "
					       "latency p50 %6.0f us\n",
					       second, (unsigned long long)window_msgs, (unsigned long long)(dups - last_dups),
					       (double)peers / n_nodes, p50 / 1e3);
				last_dups = dups;
				window_msgs = 0;
			}
			second++;
			next_sec += 1000000000ull;
		}
		while (tx_step && next_tx <= now) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			publish_one((uint32_t)(rng % n_nodes), 3, seq++, 0);
			next_tx += tx_step;
		}
		uint64_t wake = next_sec < next_tx || !tx_step ? next_sec : next_tx;
		now = now_ns();
		wait_events(wake > now ? (int)((wake - now) / 1000000u) + 1 : 0);
	}
	/* let the last messages arrive: wait until counts stop moving */
	uint64_t settle_end = now_ns() + 3000000000ull, last = 0;
	for (int quiet = 0; quiet < 5 && now_ns() < settle_end;) {
		wait_events(100);
		uint64_t sum = 0;
		for (int t = 0; t < TOPICS; t++)
			sum += received_counted[t];
		quiet = sum == last ? quiet + 1 : 0;
		last = sum;
	}

	uint64_t want = 0, got = 0;
	for (int t = 0; t < TOPICS; t++) {
		want += published_counted[t] * (n_nodes - 1);
		got += received_counted[t];
	}
	qsort(lat, n_lat, sizeof(*lat), cmp_u64);
	double p50 = n_lat ? lat[n_lat / 2] / 1e3 : 0, p99 = n_lat ? lat[n_lat * 99 / 100] / 1e3 : 0;
	wisp_stats st;
	uint64_t dups = 0, bad = 0, dropped = 0;
	for (uint32_t i = 0; i < n_nodes; i++) {
		wisp_node_stats(nodes[i].n, &st);
		dups += st.gossip.msg_duplicate;
		bad += st.gossip.msg_rejected + st.gossip.msg_bad_signature;
		dropped += st.gossip.frames_dropped;
	}
	bool ok = got == want && !interrupted;
	if (json) {
		printf("{\"event\":\"summary\",\"published\":{\"heartbeat\":%llu,\"proposal\":%llu,\"vote\":%llu,\"tx\":%llu},"
		       "\"expected_deliveries\":%llu,\"delivered\":%llu,\"duplicates\":%llu,\"rejected\":%llu,"
		       "\"frames_dropped\":%llu,\"publish_failures\":%llu,\"latency_p50_us\":%.0f,\"latency_p99_us\":%.0f,"
		       "\"ok\":%s}\n",
		       (unsigned long long)published[0], (unsigned long long)published[1], (unsigned long long)published[2],
		       (unsigned long long)published[3], (unsigned long long)want, (unsigned long long)got,
		       (unsigned long long)dups, (unsigned long long)bad, (unsigned long long)dropped,
		       (unsigned long long)publish_failures, p50, p99, ok ? "true" : "false");
	} else {
		printf("summary: published %llu heartbeats, %llu proposals, %llu votes, %llu transactions\n",
		       (unsigned long long)published[0], (unsigned long long)published[1], (unsigned long long)published[2],
		       (unsigned long long)published[3]);
		printf("         %llu of %llu deliveries after the first %.1f s, %llu duplicates dropped, %llu rejected, "
		       "%llu frames dropped, %llu publish failures\n",
		       (unsigned long long)got, (unsigned long long)want, settle_ns / 1e9, (unsigned long long)dups,
		       (unsigned long long)bad, (unsigned long long)dropped, (unsigned long long)publish_failures);
		printf("         latency publish -> delivery: p50 %.0f us, p99 %.0f us: %s\n", p50, p99,
		       ok ? "every node got every message" : "SOME MESSAGES WERE MISSING");
	}
	for (uint32_t i = 0; i < n_nodes; i++)
		wisp_node_stop(nodes[i].n);
	drain(); /* events queued before the stop hold buffers */
	for (uint32_t i = 0; i < n_nodes; i++)
		wisp_node_free(nodes[i].n);
	free(lat);
	return ok ? EXIT_OK : EXIT_FAIL;
}
