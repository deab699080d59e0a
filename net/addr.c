#include "net/addr.h"

#include <string.h>

#include <wisp/error.h>

#include "codec/multiaddr.h"

int wisp_tcp_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, wisp_peer_id *peer,
			bool *has_peer)
{
	uint8_t bin[256];
	ssize_t n = wisp_multiaddr_from_text(text, strlen(text), bin, sizeof(bin));
	if (n < 0)
		return (int)n;
	ssize_t used = wisp_multiaddr_sockaddr(bin, (size_t)n, WISP_MA_TCP, ss, len);
	if (used < 0)
		return (int)used;
	*has_peer = false;
	if ((size_t)used == (size_t)n)
		return WISP_OK;
	wisp_ma_iter it;
	wisp_ma_component c;
	wisp_ma_iter_init(&it, bin + used, (size_t)n - (size_t)used);
	int r = wisp_ma_next(&it, &c);
	if (r < 0)
		return r;
	if (r == 0 || c.code != WISP_MA_P2P)
		return WISP_ERR_UNSUPPORTED;
	int err = wisp_peer_id_from_bytes(peer, c.value, c.len);
	if (err)
		return err;
	if (wisp_ma_next(&it, &c) != 0)
		return WISP_ERR_UNSUPPORTED; /* nothing may follow /p2p */
	*has_peer = true;
	return WISP_OK;
}
