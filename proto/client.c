/* client.c: the blocking client of dcrd (docs/protocol.md).
 *
 * One connection carries one request at a time: write a frame, read frames
 * until the response with the same id arrives. Everything a caller gets
 * back has been through the same validating frame parser the daemon uses.
 * Large payloads move in DCR_CHUNK_BYTES pieces (uploads, result reads) and
 * event listings in bounded pages, so memory stays bounded on both sides.
 * The client never sees LMDB or the blob store; it signs the caller's events
 * with the identity key it was given (borrowed, must outlive the
 * connection).
 *
 * Transports: dcrd's unix socket, or TCP with TLS 1.3 (base/tls) to a
 * server "HOST:PORT". Over TLS the server's key fingerprint is checked
 * (cl_addr's pin and check) right after the handshake, before a byte of
 * the protocol is sent, and the login signature covers the connection's
 * channel binding, so it is worthless on any other connection. Everything
 * above the io_* functions is the same for both. */
#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"
#include "../base/tls.h"
#include "../room/room.h"

_Static_assert(CL_UPLOAD_WINDOW < DMN_INFLIGHT_MAX, "the daemon must keep reading");

struct cl_conn {
	int fd;
	const dcr_key *id;
	uint8_t pub[DCR_ED25519_PUB_BYTES];
	uint8_t daemon_key[DCR_ED25519_PUB_BYTES];
	uint64_t next_id;
	dcr_buf last;        /* bytes of the last response when the caller kept none */
	char *server;        /* cl_server_name */
	char *fingerprint;   /* TLS: the server's key fingerprint */
	dcr_tls_client *tls; /* NULL on the unix socket */
	/* cl_submit's guess of the position of its next event: the one after
	 * its last accepted event, in that room (next_known) */
	uint8_t next_room[ES_ROOM_ID_BYTES];
	uint64_t next_seq;
	bool next_known;
};

const char *cl_default_socket(void)
{
	const char *s = getenv("DCR_SOCKET");

	return s && *s ? s : NULL;
}

/* ---- transport --------------------------------------------------------------
 * Frames, uploads and downloads go through io_write / io_writev / io_read,
 * the same over the unix socket and over TLS; each maps a timeout (the
 * socket's SO_RCVTIMEO / SO_SNDTIMEO, DMN_CLIENT_TIMEOUT_MS) to -ETIMEDOUT
 * and the peer's close to -EPIPE. */

/* The error for a failed send() or sendmsg() other than EINTR: the send
 * timeout (EAGAIN) as -ETIMEDOUT, the rest as -errno. */
static int send_error(dcr_err *err)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return dcr_err_set(err, -ETIMEDOUT, "dcrd did not read for %u s",
		                   (unsigned)(DMN_CLIENT_TIMEOUT_MS / 1000));
	return dcr_err_set(err, -errno, "sending to dcrd: %s", strerror(errno));
}

static int io_write(cl_conn *c, const void *p, size_t n, dcr_err *err)
{
	const uint8_t *b = p;

	if (c->tls) {
		int rc = dcr_tls_client_send(c->tls, p, n, err);
		if (rc == -ETIMEDOUT)
			dcr_err_set(err, rc, "dcrd did not read for %u s",
			            (unsigned)(DMN_CLIENT_TIMEOUT_MS / 1000));
		return rc < 0 ? rc : 0;
	}
	while (n > 0) {
		ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return send_error(err);
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes the iovecs in order (consumed: iov is modified). */
static int io_writev(cl_conn *c, struct iovec *iov, int cnt, dcr_err *err)
{
	int k = 0;

	if (c->tls) { /* one TLS record stream: the pieces in order */
		for (k = 0; k < cnt; k++) {
			int rc = io_write(c, iov[k].iov_base, iov[k].iov_len, err);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	while (k < cnt) {
		struct msghdr mh;
		ssize_t sent;

		memset(&mh, 0, sizeof mh);
		mh.msg_iov = iov + k;
		mh.msg_iovlen = (size_t)(cnt - k);
		sent = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			return send_error(err);
		}
		while (k < cnt && (size_t)sent >= iov[k].iov_len) {
			sent -= (ssize_t)iov[k].iov_len;
			k++;
		}
		if (k < cnt) {
			iov[k].iov_base = (uint8_t *)iov[k].iov_base + sent;
			iov[k].iov_len -= (size_t)sent;
		}
	}
	return 0;
}

static int io_read(cl_conn *c, void *p, size_t n, dcr_err *err)
{
	uint8_t *b = p;

	while (n > 0 && c->tls) {
		int r = dcr_tls_client_recv(c->tls, b, n, err);
		if (r == -ETIMEDOUT)
			return dcr_err_set(err, r, "dcrd did not answer within %u s",
			                   (unsigned)(DMN_CLIENT_TIMEOUT_MS / 1000));
		if (r < 0)
			return r;
		if (r == 0)
			return dcr_err_set(err, -EPIPE, "dcrd closed the connection");
		b += r;
		n -= (size_t)r;
	}
	while (n > 0) {
		ssize_t r = read(c->fd, b, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return dcr_err_set(err, -ETIMEDOUT,
				                   "dcrd did not answer within %u s",
				                   (unsigned)(DMN_CLIENT_TIMEOUT_MS / 1000));
			return dcr_err_set(err, -errno, "reading from dcrd: %s", strerror(errno));
		}
		if (r == 0)
			return dcr_err_set(err, -EPIPE, "dcrd closed the connection");
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Bytes are waiting to be read (without blocking). */
static bool io_readable(cl_conn *c)
{
	struct pollfd p = {c->fd, POLLIN, 0};

	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* Closes the transport; later calls fail with -EPIPE. */
static void io_close(cl_conn *c)
{
	dcr_tls_client_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Reads one frame into buf (reset first) and parses it. */
static int read_frame(cl_conn *c, dcr_buf *buf, dcr_mp_doc **doc, dcr_err *err)
{
	uint8_t hdr[PROTO_HDR_BYTES];
	uint32_t n;
	int rc;

	dcr_buf_reset(buf);
	rc = io_read(c, hdr, sizeof hdr, err);
	if (rc < 0)
		return rc;
	n = dcr_get_be32(hdr);
	if (n > DCR_FRAME_BYTES_MAX)
		return dcr_err_set(err, DCR_EPROTO, "dcrd sent a frame of %u bytes (max %u)", n,
		                   (unsigned)DCR_FRAME_BYTES_MAX);
	dcr_buf_reserve(buf, n);
	rc = io_read(c, buf->data, n, err);
	if (rc < 0)
		return rc;
	buf->len = n;
	return proto_frame_parse(buf->data, buf->len, doc, err);
}

/* Turns an {ok: false} response into its code and message. */
static int response_error(const dcr_mpv *root, dcr_err *err)
{
	const char *code = NULL, *msg = NULL;
	size_t code_n = 0, msg_n = 0;
	int rc;

	if (dcr_mp_str(dcr_mp_get(root, "code"), &code, &code_n) < 0)
		return dcr_err_set(err, DCR_EPROTO, "dcrd sent an error without a code");
	rc = proto_code_parse(code, code_n);
	if (code_n == 5 && memcmp(code, "ERRNO", 5) == 0) {
		uint64_t e = 0;
		if (dcr_mp_u64(dcr_mp_get(root, "errno"), &e) == 0 && e > 0 && e < 4096)
			rc = -(int)e;
		else
			rc = DCR_EINTERNAL;
	}
	if (dcr_mp_str(dcr_mp_get(root, "error"), &msg, &msg_n) < 0 || msg_n == 0)
		return dcr_err_set(err, rc, NULL);
	return dcr_err_set(err, rc, "%.*s", (int)(msg_n > 400 ? 400 : msg_n), msg);
}

/* "unix:" and the socket's absolute path (as given when it cannot be
 * resolved), so that two spellings of one socket name one server. */
static char *server_name_unix(const char *path)
{
	char *abs = realpath(path, NULL);
	char *name = dcr_asprintf("unix:%s", abs ? abs : path);

	free(abs);
	return name;
}

const char *cl_server_name(const cl_conn *c)
{
	return c->server;
}

const char *cl_server_fingerprint(const cl_conn *c)
{
	return c->fingerprint;
}

int cl_server_parse(const char *server, char **host, char **port, dcr_err *err)
{
	const char *colon, *h = server, *he;
	unsigned long v;
	char *end;

	*host = *port = NULL;
	if (server[0] == '[') {
		he = strchr(server, ']');
		if (!he || he[1] != ':')
			return dcr_err_set(err, DCR_EINVALID,
			                   "server \"%s\": an IPv6 address is written [ADDR]:PORT",
			                   server);
		h = server + 1;
		colon = he + 1;
	} else {
		colon = strrchr(server, ':');
		if (!colon)
			return dcr_err_set(
			    err, DCR_EINVALID,
			    "server \"%s\": expected HOST:PORT ([ADDR]:PORT for IPv6)", server);
		he = colon;
		if (memchr(server, ':', (size_t)(colon - server)))
			return dcr_err_set(err, DCR_EINVALID,
			                   "server \"%s\": write an IPv6 address as [ADDR]:PORT",
			                   server);
	}
	if (he == h)
		return dcr_err_set(err, DCR_EINVALID, "server \"%s\": no host before the port",
		                   server);
	for (const char *q = h; q < he; q++)
		if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '-' || *q == '_' ||
		      (*q == ':' && server[0] == '[') || (*q == '%' && server[0] == '[')))
			return dcr_err_set(err, DCR_EINVALID,
			                   "server \"%s\": the host has a character not allowed in "
			                   "a host name or address at byte %zu",
			                   server, (size_t)(q - server) + 1);
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end || errno || v == 0 || v > 65535)
		return dcr_err_set(err, DCR_EINVALID,
		                   "server \"%s\": the port must be a number from 1 to 65535",
		                   server);
	*host = dcr_strndup(h, (size_t)(he - h));
	*port = dcr_asprintf("%lu", v);
	return 0;
}

/* Connects c->fd to the unix socket at path. */
static int connect_unix(cl_conn *c, const char *path, dcr_err *err)
{
	struct sockaddr_un sa;

	if (strlen(path) >= sizeof sa.sun_path)
		return dcr_err_set(err, DCR_ELIMIT, "socket path too long: %s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return dcr_err_set(err, -errno, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return dcr_err_set(err, -errno, "cannot connect to dcrd at %s: %s", path,
		                   strerror(errno));
	return 0;
}

/* Connects fd to one address within CL_CONNECT_TIMEOUT_MS (a host that
 * drops packets fails in bounded time). */
static int connect_one(int fd, const struct sockaddr *sa, socklen_t len)
{
	int fl = fcntl(fd, F_GETFL), soerr = 0;
	socklen_t sl = sizeof soerr;
	struct pollfd p = {fd, POLLOUT, 0};
	int rc;

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (connect(fd, sa, len) == 0)
		goto done;
	if (errno != EINPROGRESS)
		return -errno;
	do
		rc = poll(&p, 1, (int)CL_CONNECT_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return -errno;
	if (soerr)
		return -soerr;
done:
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

/* Connects c->fd over TCP to server ("HOST:PORT"), trying each address;
 * *host_out gets the host (free it; the TLS server name). */
static int connect_tcp(cl_conn *c, const char *server, char **host_out, dcr_err *err)
{
	struct addrinfo hints, *res = NULL;
	char *host = NULL, *port = NULL;
	int rc, last = -ECONNREFUSED;

	rc = cl_server_parse(server, &host, &port, err);
	if (rc < 0)
		goto out;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		rc = dcr_err_set(err, -EHOSTUNREACH, "cannot resolve %s: %s", host,
		                 gai_strerror(rc));
		goto out;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = -errno;
			continue;
		}
		last = connect_one(fd, ai->ai_addr, ai->ai_addrlen);
		if (last == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			c->fd = fd;
			rc = 0;
			goto out;
		}
		close(fd);
	}
	rc = dcr_err_set(err, last, "cannot connect to dcrd at %s: %s", server, strerror(-last));
out:
	if (res)
		freeaddrinfo(res);
	if (rc == 0)
		*host_out = host;
	else
		free(host);
	free(port);
	return rc;
}

static void set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* The TLS handshake on c->fd, then the server's key checked against the
 * pin and the caller's check before anything of the protocol is sent
 * (docs/protocol.md "TLS"); binding gets the connection's channel binding. */
static int tls_start(cl_conn *c, const cl_addr *addr, const char *host,
                     uint8_t binding[DCR_TLS_BINDING_BYTES], dcr_err *err)
{
	uint8_t fp[DCR_SHA256_BYTES];
	char hex[DCR_TLS_FINGERPRINT_BYTES];
	int rc;

	/* the host is the server name (SNI, unless an address) */
	rc = dcr_tls_client_connect(c->fd, host, &c->tls, fp, err);
	if (rc < 0)
		return rc;
	dcr_tls_fingerprint_format(fp, hex);
	c->fingerprint = dcr_strdup(hex);
	if (addr->pin) {
		uint8_t want[DCR_SHA256_BYTES];

		rc = dcr_tls_fingerprint_parse(addr->pin, want, err);
		if (rc < 0) {
			dcr_err_prefix(err, "--pin");
			return rc;
		}
		if (memcmp(want, fp, sizeof fp) != 0) {
			char pin[DCR_TLS_FINGERPRINT_BYTES];

			dcr_tls_fingerprint_format(want, pin);
			return dcr_err_set(err, DCR_EKEY,
			                   "the server at %s has the key %s, not the pinned %s: "
			                   "refused, nothing was sent",
			                   addr->server, hex, pin);
		}
	}
	if (addr->check) {
		rc = addr->check(addr->check_ctx, addr->server, hex, err);
		if (rc < 0)
			return rc;
	} else if (!addr->pin) {
		return dcr_err_set(err, DCR_EKEY,
		                   "the server at %s has the key %s, but no pin was given to "
		                   "check it against: refused, nothing was sent",
		                   addr->server, hex);
	}
	dcr_tls_client_binding(c->tls, binding);
	return 0;
}

int cl_connect(const char *socket_path, const dcr_key *id, cl_conn **out, dcr_err *err)
{
	cl_addr a;

	memset(&a, 0, sizeof a);
	a.socket = socket_path;
	return cl_connect_addr(&a, id, out, err);
}

int cl_connect_addr(const cl_addr *addr, const dcr_key *id, cl_conn **out, dcr_err *err)
{
	cl_conn *c = NULL;
	dcr_mp_doc *doc = NULL;
	dcr_buf buf, body;
	uint8_t challenge[32], msg[64 + DCR_TLS_BINDING_BYTES], sig[DCR_ED25519_SIG_BYTES];
	size_t msg_n = 64;
	const char *domain = DCR_DOMAIN_AUTH;
	const char *socket_path = addr->socket;
	char *host = NULL;
	bool ok = false;
	dcr_mpw w;
	int rc;

	*out = NULL;
	dcr_buf_init(&buf);
	dcr_buf_init(&body);
	if (!addr->server && !socket_path)
		socket_path = cl_default_socket();
	if (!addr->server && !socket_path) {
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "no daemon socket: set DCR_SOCKET or give --socket");
		goto out;
	}
	c = dcr_calloc(1, sizeof *c);
	c->fd = -1;
	c->id = id;
	c->next_id = 1;
	c->server = addr->server ? dcr_strdup(addr->server) : server_name_unix(socket_path);
	dcr_buf_init(&c->last);
	dcr_key_public(id, c->pub);
	rc = addr->server ? connect_tcp(c, addr->server, &host, err)
	                  : connect_unix(c, socket_path, err);
	if (rc < 0)
		goto out;
	if (addr->server) {
		set_timeouts(c->fd, CL_CONNECT_TIMEOUT_MS);
		rc = tls_start(c, addr, host, msg + 64, err);
		if (rc < 0)
			goto out;
		domain = DCR_DOMAIN_AUTH_TLS;
		msg_n = sizeof msg;
	}
	/* Every request is answered promptly (runs are asynchronous): a
	 * daemon that stays silent this long is stuck, not busy. */
	set_timeouts(c->fd, DMN_CLIENT_TIMEOUT_MS);
	/* {challenge, daemon_key, v} */
	rc = read_frame(c, &buf, &doc, err);
	if (rc < 0)
		goto out;
	if (dcr_mp_get(dcr_mp_root(doc), "ok")) {
		rc = response_error(dcr_mp_root(doc), err);
		goto out;
	}
	rc = dcr_mp_get_binn(dcr_mp_root(doc), "challenge", challenge, 32, err);
	if (rc == 0)
		rc = dcr_mp_get_binn(dcr_mp_root(doc), "daemon_key", c->daemon_key, 32, err);
	if (rc < 0) {
		dcr_err_prefix(err, "dcrd hello");
		goto out;
	}
	dcr_mp_doc_free(doc);
	doc = NULL;
	/* challenge || daemon_key [|| the TLS exporter of this connection] */
	memcpy(msg, challenge, 32);
	memcpy(msg + 32, c->daemon_key, 32);
	rc = dcr_sign(id, domain, msg, msg_n, sig);
	if (rc < 0) {
		dcr_err_set(err, rc, "signing the challenge");
		goto out;
	}
	dcr_mpw_init(&w, &body);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "key");
	dcr_mpw_bin(&w, c->pub, 32);
	dcr_mpw_str(&w, "sig");
	dcr_mpw_bin(&w, sig, sizeof sig);
	dcr_buf_reset(&buf);
	proto_frame_wrap(&buf, body.data, body.len);
	rc = io_write(c, buf.data, buf.len, err);
	if (rc < 0)
		goto out;
	rc = read_frame(c, &buf, &doc, err);
	if (rc < 0)
		goto out;
	if (dcr_mp_bool(dcr_mp_get(dcr_mp_root(doc), "ok"), &ok) < 0 || !ok) {
		rc = response_error(dcr_mp_root(doc), err);
		dcr_err_prefix(err, "authentication");
		goto out;
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	free(host);
	dcr_mp_doc_free(doc);
	dcr_buf_release(&buf);
	dcr_buf_release(&body);
	cl_close(c);
	return rc;
}

void cl_close(cl_conn *c)
{
	if (!c)
		return;
	io_close(c);
	dcr_buf_release(&c->last);
	free(c->server);
	free(c->fingerprint);
	free(c);
}

const uint8_t *cl_daemon_key(const cl_conn *c)
{
	return c->daemon_key;
}

const dcr_key *cl_identity(const cl_conn *c)
{
	return c->id;
}

/* The daemon closed c's connection (a send failed): if it said why first,
 * in an error frame with id 0 still waiting to be read (an idle connection
 * closed to make room for another, docs/protocol.md), err gets that
 * reason, as -EPIPE. */
static void closed_reason(cl_conn *c, dcr_err *err)
{
	dcr_mp_doc *doc = NULL;
	dcr_buf b;
	dcr_err e, why;

	if (!err || c->fd < 0 || !io_readable(c))
		return;
	dcr_buf_init(&b);
	if (read_frame(c, &b, &doc, &e) == 0 && dcr_mp_get(dcr_mp_root(doc), "code")) {
		dcr_err_clear(&why);
		response_error(dcr_mp_root(doc), &why);
		dcr_err_set(err, -EPIPE, "dcrd closed the connection: %s", why.msg);
	}
	dcr_mp_doc_free(doc);
	dcr_buf_release(&b);
}

/* The two halves of a call, so that a few requests can be in flight on
 * one connection (uploads); cl_call is send then receive. A transport or
 * framing failure closes the connection: the stream is out of step. */
static int send_request(cl_conn *c, const char *op, const void *args, size_t args_n,
                        uint64_t *id_out, dcr_err *err)
{
	dcr_buf req;
	uint64_t id = c->next_id++;
	int rc;

	if (c->fd < 0)
		return dcr_err_set(err, -EPIPE, "connection to dcrd is closed");
	if (args_n + 64 + strlen(op) > DCR_FRAME_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "request %s of %zu bytes is too large", op,
		                   args_n);
	dcr_buf_init(&req);
	proto_request(&req, id, op, args, args_n);
	rc = io_write(c, req.data, req.len, err);
	dcr_buf_release(&req);
	if (rc == -EPIPE || rc == -ECONNRESET)
		closed_reason(c, err);
	if (rc < 0) {
		io_close(c);
		return rc;
	}
	*id_out = id;
	return 0;
}

/* Sends {args: {data: bin, upload}, id, op: "upload.chunk"} straight from
 * the caller's buffer (writev of head, data, tail): the canonical frame
 * proto_request would build, without copying the chunk. */
static int send_chunk(cl_conn *c, uint64_t up, const uint8_t *data, size_t n, uint64_t *id_out,
                      dcr_err *err)
{
	uint8_t head[32];
	size_t hn = PROTO_HDR_BYTES, total;
	dcr_buf tail;
	dcr_mpw w;
	struct iovec iov[3];
	uint64_t id = c->next_id++;
	int rc = 0;

	if (c->fd < 0)
		return dcr_err_set(err, -EPIPE, "connection to dcrd is closed");
	if (n > DCR_CHUNK_BYTES)
		return dcr_err_set(err, DCR_ELIMIT, "chunk of %zu bytes is too large", n);
	head[hn++] = 0x83; /* map of 3: args, id, op */
	head[hn++] = 0xa4;
	memcpy(head + hn, "args", 4);
	hn += 4;
	head[hn++] = 0x82; /* map of 2: data, upload */
	head[hn++] = 0xa4;
	memcpy(head + hn, "data", 4);
	hn += 4;
	if (n < 0x100) { /* shortest bin header, as dcr_mpw_bin writes it */
		head[hn++] = 0xc4;
		head[hn++] = (uint8_t)n;
	} else if (n < 0x10000) {
		head[hn++] = 0xc5;
		head[hn++] = (uint8_t)(n >> 8);
		head[hn++] = (uint8_t)n;
	} else {
		head[hn++] = 0xc6;
		dcr_put_be32(head + hn, (uint32_t)n);
		hn += 4;
	}
	dcr_buf_init(&tail);
	dcr_mpw_init(&w, &tail);
	dcr_mpw_str(&w, "upload");
	dcr_mpw_uint(&w, up);
	dcr_mpw_str(&w, "id");
	dcr_mpw_uint(&w, id);
	dcr_mpw_str(&w, "op");
	dcr_mpw_str(&w, "upload.chunk");
	total = hn + n + tail.len;
	dcr_put_be32(head, (uint32_t)(total - PROTO_HDR_BYTES));
	iov[0].iov_base = head;
	iov[0].iov_len = hn;
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = n;
	iov[2].iov_base = tail.data;
	iov[2].iov_len = tail.len;
	rc = io_writev(c, iov, 3, err);
	if (rc == -EPIPE || rc == -ECONNRESET)
		closed_reason(c, err);
	dcr_buf_release(&tail);
	if (rc < 0) {
		io_close(c);
		return rc;
	}
	*id_out = id;
	return 0;
}

static int recv_response(cl_conn *c, uint64_t id, dcr_buf *rb, dcr_mp_doc **resp, dcr_err *err)
{
	dcr_mp_doc *doc = NULL;
	uint64_t rid;
	bool ok = false;
	int rc;

	if (resp)
		*resp = NULL;
	if (c->fd < 0)
		return dcr_err_set(err, -EPIPE, "connection to dcrd is closed");
	rc = read_frame(c, rb, &doc, err);
	if (rc < 0)
		goto fail_conn;
	if (dcr_mp_u64(dcr_mp_get(dcr_mp_root(doc), "id"), &rid) < 0 || rid != id) {
		/* An error frame with id 0 precedes a close by the daemon, which
		 * did not handle this request (e.g. an idle connection closed to
		 * make room for another, docs/protocol.md): -EPIPE, as for any
		 * connection that is gone, so that callers reconnect; the
		 * daemon's reason in the message. */
		if (dcr_mp_get(dcr_mp_root(doc), "code")) {
			dcr_err why;
			dcr_err_clear(&why);
			response_error(dcr_mp_root(doc), &why);
			rc = dcr_err_set(err, -EPIPE, "dcrd closed the connection: %s", why.msg);
			goto fail_conn;
		}
		rc = dcr_err_set(err, DCR_EPROTO, "dcrd answered request %llu with another id",
		                 (unsigned long long)id);
		goto fail_conn;
	}
	if (dcr_mp_bool(dcr_mp_get(dcr_mp_root(doc), "ok"), &ok) < 0) {
		rc = dcr_err_set(err, DCR_EPROTO, "dcrd response without ok");
		goto fail_conn;
	}
	if (!ok) {
		rc = response_error(dcr_mp_root(doc), err);
		goto out;
	}
	if (resp) {
		*resp = doc;
		doc = NULL;
	}
	rc = 0;
	goto out;
fail_conn:
	io_close(c);
out:
	dcr_mp_doc_free(doc);
	return rc;
}

int cl_call(cl_conn *c, const char *op, const void *args, size_t args_n, dcr_buf *resp_bytes,
            dcr_mp_doc **resp, dcr_err *err)
{
	uint64_t id = 0;
	int rc;

	if (resp)
		*resp = NULL;
	rc = send_request(c, op, args, args_n, &id, err);
	if (rc == 0)
		rc = recv_response(c, id, resp_bytes ? resp_bytes : &c->last, resp, err);
	return rc;
}

/* ---- helpers ------------------------------------------------------------ */

int cl_call_map(cl_conn *c, const char *op, proto_map *m, dcr_buf *rb, dcr_mp_doc **resp,
                    dcr_err *err)
{
	dcr_buf args;
	int rc;

	dcr_buf_init(&args);
	proto_map_encode(m, &args);
	proto_map_release(m);
	rc = cl_call(c, op, args.data, args.len, rb, resp, err);
	dcr_buf_release(&args);
	return rc;
}

static void put_room(proto_map *m, const uint8_t room[ES_ROOM_ID_BYTES])
{
	char hex[ES_ROOM_HEX_BYTES];

	es_room_format(room, hex);
	dcr_mpw_str(proto_map_key(m, "room"), hex);
}

/* Calls op with the arguments in m (released) and reads the uint field key
 * of the answer into *out (out may be NULL: the answer is only checked). */
static int call_u64(cl_conn *c, const char *op, proto_map *m, const char *key, uint64_t *out,
                    dcr_err *err)
{
	dcr_mp_doc *d = NULL;
	dcr_buf rb;
	int rc;

	dcr_buf_init(&rb);
	rc = cl_call_map(c, op, m, &rb, &d, err);
	if (rc == 0 && out)
		rc = dcr_mp_get_u64(dcr_mp_root(d), key, out, err);
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

static int get_u64(const dcr_mpv *root, const char *key, uint64_t *v)
{
	*v = 0;
	return dcr_mp_u64(dcr_mp_get(root, key), v);
}

static int room_size(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t *size, dcr_err *err)
{
	proto_map m;

	proto_map_init(&m);
	put_room(&m, room);
	return call_u64(c, "size", &m, "size", size, err);
}

/* Copies the str field key into a heap string (NULL if absent). */
static char *get_strdup(const dcr_mpv *root, const char *key)
{
	char *s = NULL;

	if (dcr_mp_strdup(dcr_mp_get(root, key), &s) < 0)
		return NULL;
	return s;
}

/* ---- rooms --------------------------------------------------------------- */

int cl_rooms(cl_conn *c, cl_room_info **rooms, size_t *n, dcr_err *err)
{
	dcr_mp_doc *d = NULL;
	const dcr_mpv *arr;
	cl_room_info *r = NULL;
	dcr_buf rb;
	uint32_t i, cnt = 0;
	int rc;

	*rooms = NULL;
	*n = 0;
	dcr_buf_init(&rb);
	rc = cl_call(c, "rooms", NULL, 0, &rb, &d, err);
	if (rc < 0)
		goto out;
	arr = dcr_mp_get(dcr_mp_root(d), "rooms");
	if (dcr_mp_type(arr) != DCR_MP_ARRAY) {
		rc = dcr_err_set(err, DCR_EPROTO, "rooms: no rooms array");
		goto out;
	}
	cnt = dcr_mp_len(arr);
	r = dcr_calloc(cnt ? cnt : 1, sizeof *r);
	for (i = 0; i < cnt; i++) {
		const dcr_mpv *e = dcr_mp_at(arr, i);
		const char *id;
		size_t id_n;
		if (dcr_mp_str(dcr_mp_get(e, "id"), &id, &id_n) < 0 || id_n != 32) {
			rc = dcr_err_set(err, DCR_EPROTO, "rooms[%u]: bad id", i);
			cl_rooms_free(r, i);
			r = NULL;
			goto out;
		}
		memcpy(r[i].id, id, 32);
		r[i].id[32] = 0;
		r[i].name = get_strdup(e, "name");
		r[i].status = get_strdup(e, "status");
		if (!r[i].name)
			r[i].name = dcr_strdup("");
		if (!r[i].status)
			r[i].status = dcr_strdup("");
		get_u64(e, "size", &r[i].size);
	}
	*rooms = r;
	*n = cnt;
	r = NULL;
out:
	free(r);
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

void cl_rooms_free(cl_room_info *rooms, size_t n)
{
	size_t i;

	if (!rooms)
		return;
	for (i = 0; i < n; i++) {
		free(rooms[i].name);
		free(rooms[i].status);
	}
	free(rooms);
}

int cl_room_resolve(cl_conn *c, const char *room, uint8_t id[ES_ROOM_ID_BYTES], dcr_err *err)
{
	cl_room_info *rooms = NULL;
	size_t n = 0, i, hits = 0, hit = 0;
	int rc;

	if (strlen(room) == 32 && es_room_parse(room, id) == 0)
		return 0;
	rc = cl_rooms(c, &rooms, &n, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++)
		if (strcmp(rooms[i].name, room) == 0) {
			hits++;
			hit = i;
		}
	if (hits == 0)
		rc = dcr_err_set(err, DCR_ENOTFOUND, "no room named %s among your rooms", room);
	else if (hits > 1)
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "%zu rooms are named %s: give the room id instead", hits, room);
	else
		rc = es_room_parse(rooms[hit].id, id);
	cl_rooms_free(rooms, n);
	return rc;
}

/* ---- events -------------------------------------------------------------- */

int cl_events(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t from, uint64_t to,
              int (*fn)(void *ctx, uint64_t seq, const void *entry, size_t n), void *ctx,
              dcr_err *err)
{
	dcr_buf rb;
	int rc = 0;

	dcr_buf_init(&rb);
	while (to == ES_SEQ_ANY || from < to) {
		proto_map m;
		dcr_mp_doc *d = NULL;
		const dcr_mpv *arr;
		uint64_t max = to == ES_SEQ_ANY ? DMN_EVENTS_PER_REPLY_MAX : to - from;
		uint32_t i, cnt;

		if (max > DMN_EVENTS_PER_REPLY_MAX)
			max = DMN_EVENTS_PER_REPLY_MAX;
		proto_map_init(&m);
		put_room(&m, room);
		dcr_mpw_uint(proto_map_key(&m, "from"), from);
		dcr_mpw_uint(proto_map_key(&m, "max"), max);
		rc = cl_call_map(c, "events", &m, &rb, &d, err);
		if (rc < 0)
			break;
		arr = dcr_mp_get(dcr_mp_root(d), "events");
		if (dcr_mp_type(arr) != DCR_MP_ARRAY) {
			dcr_mp_doc_free(d);
			rc = dcr_err_set(err, DCR_EPROTO, "events: no events array");
			break;
		}
		cnt = dcr_mp_len(arr);
		for (i = 0; i < cnt && rc == 0; i++) {
			const uint8_t *p;
			size_t n;
			if (dcr_mp_bin(dcr_mp_at(arr, i), &p, &n) < 0) {
				rc = dcr_err_set(err, DCR_EPROTO, "events: entry %u is not bin", i);
				break;
			}
			rc = fn(ctx, from + i, p, n);
		}
		dcr_mp_doc_free(d);
		if (rc != 0 || cnt == 0)
			break;
		from += cnt;
	}
	dcr_buf_release(&rb);
	return rc;
}

int cl_wait(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size, uint64_t timeout_ms,
            uint64_t *size_out, dcr_err *err)
{
	proto_map m;

	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_uint(proto_map_key(&m, "size"), size);
	dcr_mpw_uint(proto_map_key(&m, "timeout_ms"), timeout_ms);
	return call_u64(c, "wait", &m, "size", size_out, err);
}

/* ---- submit ---------------------------------------------------------------- */

/* Submits a signed entry. On ESEQ, *size_hint (may be NULL) gets the
 * room's size when dcrd sent it with the error (docs/protocol.md), and
 * *hinted says so. */
static int submit_entry(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const dcr_buf *entry,
                        uint64_t *seq_out, uint64_t *size_hint, bool *hinted, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	dcr_buf rb;
	int rc;

	if (hinted)
		*hinted = false;
	dcr_buf_init(&rb);
	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_bin(proto_map_key(&m, "entry"), entry->data, entry->len);
	rc = cl_call_map(c, "submit", &m, &rb, &d, err);
	if (rc == 0 && seq_out)
		rc = dcr_mp_get_u64(dcr_mp_root(d), "seq", seq_out, err);
	if (rc == DCR_ESEQ && size_hint && hinted) {
		/* rb holds the error response */
		dcr_mp_doc *e = NULL;
		if (proto_frame_parse(rb.data, rb.len, &e, NULL) == 0 &&
		    dcr_mp_u64(dcr_mp_get(dcr_mp_root(e), "size"), size_hint) == 0)
			*hinted = true;
		dcr_mp_doc_free(e);
	}
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

int cl_submit(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *type, const void *body,
              size_t body_n, uint64_t *seq_out, dcr_err *err)
{
	dcr_buf entry;
	unsigned attempt;
	uint64_t size = 0, seq = 0;
	/* The first position tried: the one after this connection's last
	 * event in this room, without asking (one round trip per event while
	 * nobody else writes); a wrong guess costs dcrd no signature check and
	 * its answer carries the size (ESEQ with size). */
	bool known = c->next_known && memcmp(c->next_room, room, ES_ROOM_ID_BYTES) == 0,
	     guessed = known;
	int rc = 0;

	if (known)
		size = c->next_seq;
	c->next_known = false;
	dcr_buf_init(&entry);
	for (attempt = 0; attempt <= DMN_SUBMIT_RETRIES; attempt++) {
		if (!known) {
			rc = room_size(c, room, &size, err);
			if (rc < 0)
				break;
		}
		dcr_buf_reset(&entry);
		rc = es_event_build(c->id, room, size, dcr_now_ms(), type, body, body_n, &entry,
		                    err);
		if (rc < 0)
			break;
		rc = submit_entry(c, room, &entry, &seq, &size, &known, err);
		if (rc == 0) {
			memcpy(c->next_room, room, ES_ROOM_ID_BYTES);
			c->next_seq = seq + 1;
			c->next_known = true;
			if (seq_out)
				*seq_out = seq;
		}
		if (rc != DCR_ESEQ)
			break;
		/* Someone appended first: back off a little, randomly, so
		 * competing writers do not collide again in lockstep (a stale
		 * guess is no collision: retried at once). */
		if (!(attempt == 0 && guessed)) {
			usleep((useconds_t)(1000 * (1 + attempt) +
			                    dcr_random_below(2000 * (attempt + 1))));
			known = false; /* the size sent with the error is old now */
		}
	}
	dcr_buf_release(&entry);
	return rc;
}

int cl_room_create(cl_conn *c, const char *json, uint8_t id_out[ES_ROOM_ID_BYTES], dcr_err *err)
{
	dcr_buf body, entry;
	int rc;

	dcr_buf_init(&body);
	dcr_buf_init(&entry);
	es_room_new(id_out);
	rm_body_definition(&body, json);
	rc = es_event_build(c->id, id_out, 0, dcr_now_ms(), RM_EV_CREATED, body.data, body.len,
	                    &entry, err);
	if (rc == 0)
		rc = submit_entry(c, id_out, &entry, NULL, NULL, NULL, err);
	dcr_buf_release(&body);
	dcr_buf_release(&entry);
	return rc;
}

/* ---- provisioning ---------------------------------------------------------- */

static int upload_end(cl_conn *c, uint64_t up, rm_provision *p, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	const dcr_mpv *r;
	dcr_buf rb;
	int rc;

	dcr_buf_init(&rb);
	proto_map_init(&m);
	dcr_mpw_uint(proto_map_key(&m, "upload"), up);
	rc = cl_call_map(c, "upload.end", &m, &rb, &d, err);
	if (rc < 0)
		goto out;
	r = dcr_mp_root(d);
	p->blob = get_strdup(r, "blob");
	if (!p->blob) {
		rc = dcr_err_set(err, DCR_EPROTO, "upload.end: no blob");
		goto out;
	}
	rc = dcr_mp_get_binn(r, "sha256", p->sha256, 32, err);
	if (rc == 0)
		rc = dcr_mp_get_binn(r, "stats_sha256", p->stats_sha256, 32, err);
	if (rc == 0)
		rc = dcr_mp_get_u64(r, "bytes", &p->bytes, err);
	if (rc == 0)
		rc = dcr_mp_get_u64(r, "rows", &p->rows, err);
out:
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

/* "dataset NAME (file FILE)" for messages; the file only when named. */
static const char *upload_label(char *buf, size_t cap, const char *dataset, const char *file)
{
	if (file && *file)
		snprintf(buf, cap, "dataset %s (file %s)", dataset, file);
	else
		snprintf(buf, cap, "dataset %s", dataset);
	return buf;
}

int cl_provision(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset,
                 const char *file_name, uint64_t total_hint,
                 int (*read_fn)(void *ctx, void *buf, size_t cap), void *rctx,
                 cl_progress_fn progress, void *pctx, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	dcr_buf rb, body;
	uint8_t *chunk = NULL;
	uint64_t up = 0, done = 0, pend[CL_UPLOAD_WINDOW];
	size_t npend = 0;
	rm_provision p;
	uint8_t mine[DCR_SHA256_BYTES];
	dcr_sha256_ctx *h = dcr_sha256_new();
	bool uploading = true; /* until upload.end has answered */
	char label[DCR_ERR_MSG_BYTES / 2];
	int rc;

	memset(&p, 0, sizeof p);
	dcr_buf_init(&rb);
	dcr_buf_init(&body);
	proto_map_init(&m);
	/* the file name rule of rm_apply, before a byte is sent; the message
	 * never quotes the name (it may hold terminal escapes) */
	rc = rm_file_name_check(file_name ? file_name : "", file_name ? strlen(file_name) : 0,
	                        err);
	if (rc < 0) {
		dcr_err_prefix(err, "cannot provision dataset %s under this file name", dataset);
		goto out;
	}
	put_room(&m, room);
	dcr_mpw_str(proto_map_key(&m, "dataset"), dataset);
	dcr_mpw_str(proto_map_key(&m, "file"), file_name ? file_name : "");
	if (total_hint) /* lets dcrd refuse a file past a quota before it is sent */
		dcr_mpw_uint(proto_map_key(&m, "bytes"), total_hint);
	rc = cl_call_map(c, "upload.begin", &m, &rb, &d, err);
	if (rc < 0)
		goto out;
	rc = dcr_mp_get_u64(dcr_mp_root(d), "upload", &up, err);
	dcr_mp_doc_free(d);
	d = NULL;
	if (rc < 0)
		goto out;
	/* Keep a few chunks in flight (fewer than DMN_INFLIGHT_MAX), so the
	 * daemon validates one while the next is read and sent. Answers come
	 * in order; the first error wins (after a failed chunk the daemon
	 * has dropped the upload and answers the rest with ENOTFOUND). */
	chunk = dcr_malloc(DCR_CHUNK_BYTES);
	for (bool eof = false; !eof;) {
		size_t have = 0;
		/* Fill whole chunks so the number of round trips stays low. */
		while (have < DCR_CHUNK_BYTES) {
			int r = read_fn(rctx, chunk + have, DCR_CHUNK_BYTES - have);
			if (r < 0) {
				rc = dcr_err_set(err, r, "reading %s: %s",
				                 file_name ? file_name : dataset, dcr_strerror(r));
				goto drain; /* then abort the upload */
			}
			if (r == 0)
				break;
			have += (size_t)r;
		}
		eof = have < DCR_CHUNK_BYTES;
		if (have == 0)
			break;
		if (npend == CL_UPLOAD_WINDOW) {
			int r = recv_response(c, pend[0], &rb, NULL, err);
			memmove(pend, pend + 1, (npend - 1) * sizeof *pend);
			npend--;
			if (r < 0) {
				rc = r;
				up = 0; /* dropped by the daemon (or the connection is gone) */
				goto drain;
			}
		}
		/* The owner signs the hash of what it sent, not the daemon's word. */
		dcr_sha256_update(h, chunk, have);
		rc = send_chunk(c, up, chunk, have, &pend[npend], err);
		if (rc < 0) {
			up = 0;
			goto drain;
		}
		npend++;
		done += have;
		if (progress)
			progress(pctx, done, total_hint);
	}
drain:
	while (npend > 0) {
		dcr_err e2;
		int r = recv_response(c, pend[0], &rb, NULL, rc < 0 ? &e2 : err);
		memmove(pend, pend + 1, (npend - 1) * sizeof *pend);
		npend--;
		if (r < 0 && rc == 0) {
			rc = r;
			up = 0;
		}
	}
	if (rc < 0)
		goto out;
	p.dataset = (char *)dataset;
	p.file = (char *)(file_name ? file_name : "");
	p.present = true;
	dcr_key_public(c->id, p.by);
	rc = upload_end(c, up, &p, err);
	up = 0; /* finished or dropped by the daemon either way */
	if (rc < 0)
		goto out;
	uploading = false;
	dcr_sha256_final(h, mine);
	/* Name the upload and both values, so the user can compare them with
	 * the file (sha256sum) and knows which side to distrust. */
	if (p.bytes != done) {
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "%s: the size dcrd reports (%llu bytes) differs from the %llu "
		                 "bytes sent: not signing dataset.provisioned",
		                 upload_label(label, sizeof label, dataset, file_name),
		                 (unsigned long long)p.bytes, (unsigned long long)done);
		goto out;
	}
	if (memcmp(p.sha256, mine, sizeof mine) != 0) {
		char theirs_hex[2 * DCR_SHA256_BYTES + 1], mine_hex[2 * DCR_SHA256_BYTES + 1];
		dcr_hex_encode(p.sha256, sizeof p.sha256, theirs_hex);
		dcr_hex_encode(mine, sizeof mine, mine_hex);
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "%s: the sha256 dcrd reports (%s) differs from the sha256 of the "
		                 "%llu bytes sent (%s): not signing dataset.provisioned",
		                 upload_label(label, sizeof label, dataset, file_name), theirs_hex,
		                 (unsigned long long)done, mine_hex);
		goto out;
	}
	rm_body_provisioned(&body, &p);
	rc = cl_submit(c, room, RM_EV_PROVISIONED, body.data, body.len, NULL, err);
out:
	/* A transport failure ("dcrd closed the connection") says nothing of
	 * what was being done: name the upload it broke. */
	if (rc < 0 && uploading && c->fd < 0)
		dcr_err_prefix(err, "uploading %s",
		               upload_label(label, sizeof label, dataset, file_name));
	if (rc < 0 && up != 0 && c->fd >= 0) {
		/* Tell the daemon to drop the partial upload; keep the first error. */
		dcr_err e2;
		proto_map_init(&m);
		dcr_mpw_uint(proto_map_key(&m, "upload"), up);
		cl_call_map(c, "upload.abort", &m, &rb, NULL, &e2);
	}
	free(p.blob);
	free(chunk);
	dcr_sha256_free(h);
	dcr_buf_release(&body);
	dcr_buf_release(&rb);
	return rc;
}

/* ---- runs and results -------------------------------------------------------- */

int cl_run(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
           char run_id[33], dcr_err *err)
{
	return cl_run_eps(c, room, computation, NULL, run_id, err);
}

int cl_run_eps(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
               const char *epsilon, char run_id[33], dcr_err *err)
{
	uint8_t raw[16];
	dcr_buf body;
	int rc;

	dcr_random(raw, sizeof raw);
	dcr_hex_encode(raw, sizeof raw, run_id);
	dcr_buf_init(&body);
	rm_body_run_requested_eps(&body, computation, epsilon, run_id);
	rc = cl_submit(c, room, RM_EV_RUN_REQUESTED, body.data, body.len, NULL, err);
	dcr_buf_release(&body);
	return rc;
}

int cl_run_status_get(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
                      cl_run_status *st, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	const dcr_mpv *r;
	const char *s;
	size_t n;
	dcr_buf rb;
	int rc;

	memset(st, 0, sizeof *st);
	dcr_buf_init(&rb);
	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_str(proto_map_key(&m, "computation"), computation);
	rc = cl_call_map(c, "run.status", &m, &rb, &d, err);
	if (rc < 0)
		goto out;
	r = dcr_mp_root(d);
	if (dcr_mp_str(dcr_mp_get(r, "state"), &s, &n) < 0 || n >= sizeof st->state) {
		rc = dcr_err_set(err, DCR_EPROTO, "run.status: bad state");
		goto out;
	}
	memcpy(st->state, s, n);
	if (dcr_mp_str(dcr_mp_get(r, "run"), &s, &n) == 0 && n < sizeof st->run_id)
		memcpy(st->run_id, s, n);
	st->error = get_strdup(r, "error");
	st->detail = get_strdup(r, "detail");
	get_u64(r, "rows", &st->rows);
	get_u64(r, "suppressed", &st->suppressed);
	get_u64(r, "duration_ms", &st->duration_ms);
	get_u64(r, "result_bytes", &st->result_bytes);
out:
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

void cl_run_status_release(cl_run_status *st)
{
	free(st->error);
	st->error = NULL;
	free(st->detail);
	st->detail = NULL;
}

int cl_result_open(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *computation,
                   char run_id[33], uint64_t *size, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	dcr_buf rb, body;
	const char *s;
	size_t n;
	int rc;

	dcr_buf_init(&rb);
	dcr_buf_init(&body);
	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_str(proto_map_key(&m, "computation"), computation);
	rc = cl_call_map(c, "result.open", &m, &rb, &d, err);
	if (rc < 0)
		goto out;
	if (dcr_mp_str(dcr_mp_get(dcr_mp_root(d), "run"), &s, &n) < 0 || n != 32) {
		rc = dcr_err_set(err, DCR_EPROTO, "result.open: bad run id");
		goto out;
	}
	memcpy(run_id, s, 32);
	run_id[32] = 0;
	rc = dcr_mp_get_u64(dcr_mp_root(d), "size", size, err);
	if (rc < 0)
		goto out;
	rm_body_retrieved(&body, run_id);
	rc = cl_submit(c, room, RM_EV_RETRIEVED, body.data, body.len, NULL, err);
out:
	dcr_mp_doc_free(d);
	dcr_buf_release(&body);
	dcr_buf_release(&rb);
	return rc;
}

/* One ranged read (result.read, data.read): the object is named by the
 * str arg `key`; the response's "data" is at most cap bytes, copied to buf;
 * `size` (if asked) is the object's total size. Returns bytes read. */
static int ranged_read_file(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *op,
                            const char *key, const char *name, const char *file,
                            const uint8_t *sha256, uint64_t offset, void *buf, size_t cap,
                            uint64_t *size, dcr_err *err);

static int ranged_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *op,
                       const char *key, const char *name, const uint8_t *sha256,
                       uint64_t offset, void *buf, size_t cap, uint64_t *size, dcr_err *err)
{
	return ranged_read_file(c, room, op, key, name, NULL, sha256, offset, buf, cap, size, err);
}

/* ranged_read, with the file argument of data.read for a drop (NULL: none). */
static int ranged_read_file(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *op,
                            const char *key, const char *name, const char *file,
                            const uint8_t *sha256, uint64_t offset, void *buf, size_t cap,
                            uint64_t *size, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	const uint8_t *p;
	size_t n;
	dcr_buf rb;
	int rc;

	if (cap > DMN_RESULT_READ_BYTES_MAX)
		cap = DMN_RESULT_READ_BYTES_MAX;
	if (cap > INT32_MAX)
		cap = INT32_MAX;
	dcr_buf_init(&rb);
	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_str(proto_map_key(&m, key), name);
	if (file)
		dcr_mpw_str(proto_map_key(&m, "file"), file);
	dcr_mpw_uint(proto_map_key(&m, "offset"), offset);
	dcr_mpw_uint(proto_map_key(&m, "len"), cap);
	if (sha256)
		dcr_mpw_bin(proto_map_key(&m, "sha256"), sha256, DCR_SHA256_BYTES);
	rc = cl_call_map(c, op, &m, &rb, &d, err);
	if (rc < 0)
		goto out;
	rc = dcr_mp_get_bin(dcr_mp_root(d), "data", &p, &n, err);
	if (rc < 0)
		goto out;
	if (n > cap) {
		rc = dcr_err_set(err, DCR_EPROTO, "%s: %zu bytes for %zu asked", op, n, cap);
		goto out;
	}
	if (size && dcr_mp_get_u64(dcr_mp_root(d), "size", size, err) < 0) {
		rc = DCR_EPROTO;
		goto out;
	}
	memcpy(buf, p, n);
	rc = (int)n;
out:
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

int cl_result_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                   uint64_t offset, void *buf, size_t cap, dcr_err *err)
{
	return ranged_read(c, room, "result.read", "run", run_id, NULL, offset, buf, cap, NULL, err);
}

int cl_logs_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                 uint64_t offset, void *buf, size_t cap, uint64_t *size, dcr_err *err)
{
	return ranged_read(c, room, "logs.read", "run", run_id, NULL, offset, buf, cap, size, err);
}

int cl_data_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset,
                 const uint8_t *sha256, uint64_t offset, void *buf, size_t cap, uint64_t *size,
                 dcr_err *err)
{
	return ranged_read(c, room, "data.read", "dataset", dataset, sha256, offset, buf, cap, size,
	                   err);
}

int cl_drop_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset,
                 const char *file, const uint8_t *sha256, uint64_t offset, void *buf, size_t cap,
                 uint64_t *size, dcr_err *err)
{
	return ranged_read_file(c, room, "data.read", "dataset", dataset, file, sha256, offset, buf,
	                        cap, size, err);
}

/* ---- development runs ------------------------------------------------------------ */

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cl_dev_run(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *language,
               const char *script, const char *const *inputs, size_t ninputs, char run_id[33],
               dcr_err *err)
{
	enum rm_dev_lang lang;
	const char **sorted = NULL;
	uint8_t raw[16];
	dcr_buf body;
	size_t n = 0;
	int rc;

	if (strcmp(language, "sql") == 0)
		lang = RM_DEV_SQL;
	else if (strcmp(language, "python") == 0)
		lang = RM_DEV_PYTHON;
	else if (strcmp(language, "r") == 0)
		lang = RM_DEV_R;
	else
		return dcr_err_set(err, DCR_EINVALID, "language \"%s\": sql, python or r", language);
	sorted = dcr_calloc(ninputs + 1, sizeof *sorted);
	for (size_t i = 0; i < ninputs; i++)
		sorted[i] = inputs[i];
	qsort(sorted, ninputs, sizeof *sorted, str_cmp);
	for (size_t i = 0; i < ninputs; i++) /* each once */
		if (n == 0 || strcmp(sorted[n - 1], sorted[i]) != 0)
			sorted[n++] = sorted[i];
	dcr_random(raw, sizeof raw);
	dcr_hex_encode(raw, sizeof raw, run_id);
	dcr_buf_init(&body);
	rm_body_dev_requested(&body, run_id, lang, script, sorted, n);
	rc = cl_submit(c, room, RM_EV_DEV_REQUESTED, body.data, body.len, NULL, err);
	dcr_buf_release(&body);
	free(sorted);
	return rc;
}

void cl_dev_status_free(cl_dev_status *st, size_t n)
{
	for (size_t i = 0; st && i < n; i++) {
		free(st[i].error);
		free(st[i].detail);
		for (size_t k = 0; k < st[i].ninputs; k++)
			free(st[i].inputs[k]);
		free(st[i].inputs);
	}
	free(st);
}

int cl_dev_status_get(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                      cl_dev_status **out, size_t *nout, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	const dcr_mpv *runs;
	cl_dev_status *st = NULL;
	size_t n = 0;
	dcr_buf rb;
	int rc;

	*out = NULL;
	*nout = 0;
	dcr_buf_init(&rb);
	proto_map_init(&m);
	put_room(&m, room);
	if (run_id)
		dcr_mpw_str(proto_map_key(&m, "run"), run_id);
	rc = cl_call_map(c, "dev.status", &m, &rb, &d, err);
	if (rc < 0)
		goto out;
	runs = dcr_mp_get(dcr_mp_root(d), "runs");
	if (dcr_mp_type(runs) != DCR_MP_ARRAY) {
		rc = dcr_err_set(err, DCR_EPROTO, "dev.status: no runs");
		goto out;
	}
	st = dcr_calloc(dcr_mp_len(runs) + 1, sizeof *st);
	for (uint32_t i = 0; i < dcr_mp_len(runs); i++, n++) {
		const dcr_mpv *r = dcr_mp_at(runs, i), *in, *v;
		const char *s;
		size_t sn;
		if (dcr_mp_str(dcr_mp_get(r, "run"), &s, &sn) < 0 || sn >= sizeof st[n].run_id ||
		    (memcpy(st[n].run_id, s, sn), dcr_mp_str(dcr_mp_get(r, "state"), &s, &sn) < 0) ||
		    sn >= sizeof st[n].state ||
		    (memcpy(st[n].state, s, sn), dcr_mp_str(dcr_mp_get(r, "language"), &s, &sn) < 0) ||
		    sn >= sizeof st[n].language) {
			rc = dcr_err_set(err, DCR_EPROTO, "dev.status: bad entry %u", i);
			goto out;
		}
		memcpy(st[n].language, s, sn);
		st[n].error = get_strdup(r, "error");
		st[n].detail = get_strdup(r, "detail");
		get_u64(r, "duration_ms", &st[n].duration_ms);
		get_u64(r, "result_bytes", &st[n].result_bytes);
		get_u64(r, "requested_seq", &st[n].requested_seq);
		v = dcr_mp_get(r, "logs");
		if (v && dcr_mp_bool(v, &st[n].logs) < 0)
			st[n].logs = false;
		in = dcr_mp_get(r, "inputs");
		st[n].inputs = dcr_calloc(dcr_mp_len(in) + 1, sizeof *st[n].inputs);
		for (uint32_t k = 0; dcr_mp_type(in) == DCR_MP_ARRAY && k < dcr_mp_len(in); k++)
			if (dcr_mp_strdup(dcr_mp_at(in, k), &st[n].inputs[st[n].ninputs]) == 0)
				st[n].ninputs++;
	}
	*out = st;
	*nout = n;
	st = NULL;
out:
	cl_dev_status_free(st, n);
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

int cl_dev_read(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                const char *what, uint64_t offset, void *buf, size_t cap, uint64_t *size,
                dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	const uint8_t *p;
	size_t n;
	dcr_buf rb;
	int rc;

	if (cap > DMN_RESULT_READ_BYTES_MAX)
		cap = DMN_RESULT_READ_BYTES_MAX;
	if (cap > INT32_MAX)
		cap = INT32_MAX;
	dcr_buf_init(&rb);
	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_str(proto_map_key(&m, "run"), run_id);
	dcr_mpw_str(proto_map_key(&m, "what"), what);
	dcr_mpw_uint(proto_map_key(&m, "offset"), offset);
	dcr_mpw_uint(proto_map_key(&m, "len"), cap);
	rc = cl_call_map(c, "dev.read", &m, &rb, &d, err);
	if (rc < 0)
		goto out;
	rc = dcr_mp_get_bin(dcr_mp_root(d), "data", &p, &n, err);
	if (rc == 0 && n > cap)
		rc = dcr_err_set(err, DCR_EPROTO, "dev.read: %zu bytes for %zu asked", n, cap);
	if (rc == 0 && size && dcr_mp_get_u64(dcr_mp_root(d), "size", size, err) < 0)
		rc = DCR_EPROTO;
	if (rc < 0)
		goto out;
	memcpy(buf, p, n);
	rc = (int)n;
out:
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

/* ---- text results --------------------------------------------------------------- */

/* Calls op and appends the str field `key` of the response to out. */
static int call_text(cl_conn *c, const char *op, proto_map *m, const char *key, dcr_buf *out,
                     dcr_err *err)
{
	dcr_mp_doc *d = NULL;
	const char *s;
	size_t n;
	dcr_buf rb, args;
	int rc;

	dcr_buf_init(&rb);
	dcr_buf_init(&args);
	if (m) {
		proto_map_encode(m, &args);
		proto_map_release(m);
	}
	rc = cl_call(c, op, m ? args.data : NULL, args.len, &rb, &d, err);
	if (rc == 0) {
		rc = dcr_mp_get_str(dcr_mp_root(d), key, &s, &n, err);
		if (rc == 0)
			dcr_buf_append(out, s, n);
	}
	dcr_mp_doc_free(d);
	dcr_buf_release(&args);
	dcr_buf_release(&rb);
	return rc;
}

int cl_stats(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset, dcr_buf *json,
             dcr_err *err)
{
	proto_map m;

	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_str(proto_map_key(&m, "dataset"), dataset);
	return call_text(c, "stats", &m, "json", json, err);
}

int cl_room_test(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], dcr_buf *report, dcr_err *err)
{
	proto_map m;

	proto_map_init(&m);
	put_room(&m, room);
	return call_text(c, "room.test", &m, "report", report, err);
}

int cl_datasets(cl_conn *c, dcr_buf *json, dcr_err *err)
{
	return call_text(c, "datasets", NULL, "json", json, err);
}

/* ---- log integrity --------------------------------------------------------------- */

int cl_checkpoint(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], es_checkpoint *cp, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	const uint8_t *p;
	size_t n;
	dcr_buf rb;
	int rc;

	dcr_buf_init(&rb);
	proto_map_init(&m);
	put_room(&m, room);
	rc = cl_call_map(c, "checkpoint", &m, &rb, &d, err);
	if (rc == 0)
		rc = dcr_mp_get_bin(dcr_mp_root(d), "checkpoint", &p, &n, err);
	if (rc == 0)
		rc = es_checkpoint_decode(p, n, cp, err);
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

/* Reads an array of 32-byte hashes (at most 64) from the response's "proof". */
static int get_proof(const dcr_mpv *root, uint8_t (*proof)[32], size_t *proof_n, dcr_err *err)
{
	const dcr_mpv *arr = dcr_mp_get(root, "proof");
	uint32_t i, cnt = dcr_mp_len(arr);

	if (dcr_mp_type(arr) != DCR_MP_ARRAY || cnt > 64)
		return dcr_err_set(err, DCR_EPROTO, "proof: bad proof array");
	for (i = 0; i < cnt; i++) {
		const uint8_t *p;
		size_t n;
		if (dcr_mp_bin(dcr_mp_at(arr, i), &p, &n) < 0 || n != 32)
			return dcr_err_set(err, DCR_EPROTO, "proof[%u]: not a 32-byte hash", i);
		memcpy(proof[i], p, 32);
	}
	*proof_n = cnt;
	return 0;
}

/* A proof request: op with the room and two sizes, answered by a proof. */
static int call_proof(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *op,
                      const char *k1, uint64_t v1, const char *k2, uint64_t v2,
                      uint8_t (*proof)[32], size_t *proof_n, dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	dcr_buf rb;
	int rc;

	*proof_n = 0;
	dcr_buf_init(&rb);
	proto_map_init(&m);
	put_room(&m, room);
	dcr_mpw_uint(proto_map_key(&m, k1), v1);
	dcr_mpw_uint(proto_map_key(&m, k2), v2);
	rc = cl_call_map(c, op, &m, &rb, &d, err);
	if (rc == 0)
		rc = get_proof(dcr_mp_root(d), proof, proof_n, err);
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	return rc;
}

int cl_inclusion_proof(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq,
                       uint64_t size, uint8_t (*proof)[32], size_t *proof_n, dcr_err *err)
{
	return call_proof(c, room, "proof", "seq", seq, "size", size, proof, proof_n, err);
}

int cl_consistency_proof(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size_old,
                         uint64_t size_new, uint8_t (*proof)[32], size_t *proof_n, dcr_err *err)
{
	return call_proof(c, room, "consistency", "old", size_old, "new", size_new, proof, proof_n,
	                  err);
}
