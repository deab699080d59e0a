/* TCP multiaddrs as the node uses them: "/ip4|ip6/<addr>/tcp/<port>" with an
 * optional "/p2p/<peer id>". Pure functions; any thread. */
#ifndef WISP_NET_ADDR_H
#define WISP_NET_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

#include <wisp/common.h>
#include <wisp/identity.h>

/* Parse text into a socket address and, when present, the /p2p peer id.
 * Errors: the multiaddr codec's (WISP_ERR_MALFORMED, WISP_ERR_UNKNOWN_CODE,
 * ...), WISP_ERR_UNSUPPORTED (not ip4/ip6 + tcp, or components after
 * /p2p), WISP_ERR_BAD_KEY (the /p2p value is not a peer id). */
int wisp_tcp_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, wisp_peer_id *peer,
			bool *has_peer) WISP_NONNULL(1, 2, 3, 4, 5) WISP_WARN_UNUSED;

#endif
