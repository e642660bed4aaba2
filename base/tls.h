/* tls.h: TLS 1.3 for dcr's transport over TCP, both sides (OpenSSL; the
 * one module that includes openssl/ssl.h). docs/protocol.md "TLS".
 *
 * - TLS 1.3 only (a TLS 1.2 or older peer is refused with a
 *   protocol_version alert), no compression, no renegotiation, no session
 *   tickets or resumption, no early data.
 * - The server authenticates with a self-signed certificate over an
 *   Ed25519 key; clients pin it by its **fingerprint**: "sha256:" and 64
 *   lowercase hex digits of SHA-256 over the DER SubjectPublicKeyInfo of
 *   the certificate (so a certificate re-issued for the same key keeps its
 *   fingerprint). Anyone can recompute it:
 *     openssl x509 -in tls.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
 *   The handshake proves the server holds that key (TLS 1.3's
 *   CertificateVerify), so a matching fingerprint authenticates the server.
 * - The **channel binding** of a connection is RFC 9266's tls-exporter:
 *   32 bytes of SSL_export_keying_material with the label
 *   "EXPORTER-Channel-Binding" and no context. Both ends of one connection
 *   get the same value; any two connections get different ones.
 *
 * Both sides drive one engine (dcr_tls_engine) over memory buffers: the
 * server from its event loop (lend it what the socket gave, take
 * plaintext, give plaintext, drain what the socket must send), the client
 * with the blocking loop of dcr_tls_client over a connected fd.
 *
 * Errors: every function returns 0 (or a count) or a negative code with
 * err set: DCR_EPROTO for what the peer did (not TLS, a refused version,
 * an alert received, a bad record), DCR_ECRYPTO / DCR_EKEY for local
 * crypto failures, -errno for system errors. The OpenSSL error queue is
 * translated into the message ("TLS handshake: the peer offered only TLS
 * 1.2 or older (unsupported protocol); dcr speaks TLS 1.3 only") and
 * cleared, so it never leaks into another caller's error. */
#ifndef DCR_TLS_H
#define DCR_TLS_H

#include <sys/uio.h>

#include "base.h"

/* "sha256:" + 64 hex digits (DCR_TLS_FINGERPRINT_CHARS), plus a NUL. */
#define DCR_TLS_FINGERPRINT_PREFIX "sha256:"
#define DCR_TLS_FINGERPRINT_CHARS  (7 + 2 * DCR_SHA256_BYTES)
#define DCR_TLS_FINGERPRINT_BYTES  (DCR_TLS_FINGERPRINT_CHARS + 1)
/* RFC 9266 tls-exporter */
#define DCR_TLS_BINDING_BYTES 32
#define DCR_TLS_BINDING_LABEL "EXPORTER-Channel-Binding"
/* The files of a key directory (dcr_tls_server_open). */
#define DCR_TLS_KEY_FILE  "tls.key"
#define DCR_TLS_CERT_FILE "tls.crt"

/* ---- fingerprints ------------------------------------------------------ */

/* Writes "sha256:<64 lowercase hex>" and a NUL into out. */
void dcr_tls_fingerprint_format(const uint8_t fp[DCR_SHA256_BYTES],
                                char out[DCR_TLS_FINGERPRINT_BYTES]);
/* Parses exactly "sha256:" and 64 hex digits (either case; nothing
 * before or after). DCR_EFORMAT with a message saying what is wrong
 * ("fingerprint "...": expected sha256: and 64 hex digits, found 12"). */
int dcr_tls_fingerprint_parse(const char *s, uint8_t fp[DCR_SHA256_BYTES], dcr_err *err);

/* ---- the server's key and context ---------------------------------------- */

typedef struct dcr_tls_server dcr_tls_server;

/* Opens the key directory dir: DIR/tls.key (an Ed25519 private key,
 * PKCS#8 PEM, mode 0600) and DIR/tls.crt (a self-signed certificate for
 * it). At first use makes dir (0700), the key and the certificate; a
 * missing certificate, or one for another key, is issued again from the
 * key (same fingerprint). Two processes making the key at once end up
 * with the same one (the first published wins: link(2), never
 * overwritten). A key file readable by group or others is refused
 * (DCR_EKEY, "chmod 600"). *created tells whether the key was made now
 * (may be NULL). The server is immutable once open: its engines may be
 * made from any thread. Free with dcr_tls_server_free. */
int dcr_tls_server_open(const char *dir, dcr_tls_server **out, bool *created, dcr_err *err);
void dcr_tls_server_free(dcr_tls_server *s); /* NULL: nothing */
/* The fingerprint of the server's key. */
void dcr_tls_server_fingerprint(const dcr_tls_server *s, uint8_t fp[DCR_SHA256_BYTES]);

/* ---- the engine (one TLS session over memory buffers) ------------------- *
 *
 * Not thread safe: one thread at a time per engine. It never does I/O:
 * the caller moves bytes. Memory: what was fed (or lent and kept) and not
 * yet consumed, what is waiting to be drained, and OpenSSL's record
 * buffers (a server's are released while idle, SSL_MODE_RELEASE_BUFFERS);
 * dcr_tls_engine_buffered tells the first two, which the caller bounds by
 * feeding only what it read and draining after every call. Ciphertext is
 * copied once into OpenSSL's record buffer (from a lent buffer: no other
 * copy), records once into the engine's output. */

typedef struct dcr_tls_engine dcr_tls_engine;

/* A server-side session of s (s must outlive it). */
int dcr_tls_engine_server(dcr_tls_server *s, dcr_tls_engine **out, dcr_err *err);
void dcr_tls_engine_free(dcr_tls_engine *e); /* NULL: nothing */

/* Gives the engine n bytes received from the peer and moves the
 * handshake on. 1: the handshake is complete (now or before); 0: it
 * needs more bytes; negative: the session failed (DCR_EPROTO: the peer
 * is not TLS, offered no TLS 1.3, sent an alert...). Drain afterwards
 * even on failure: the engine may hold an alert for the peer. n may be 0
 * (just move the handshake on). */
int dcr_tls_engine_feed(dcr_tls_engine *e, const void *p, size_t n, dcr_err *err);
/* The same without a copy: the engine reads from p (the handshake now,
 * then dcr_tls_engine_read) until dcr_tls_engine_keep, which the caller
 * must call before p changes or is freed; keep copies what was not
 * consumed (and counts in dcr_tls_engine_buffered). One lent buffer at a
 * time; nothing may be fed while one is lent. */
int dcr_tls_engine_feed_lent(dcr_tls_engine *e, const void *p, size_t n, dcr_err *err);
void dcr_tls_engine_keep(dcr_tls_engine *e);
bool dcr_tls_engine_handshake_done(const dcr_tls_engine *e);

/* Plaintext received, after the handshake: up to cap bytes into buf.
 * Returns the count (> 0); 0: nothing until more is fed; -EPIPE: the
 * peer closed the session (close_notify); DCR_EPROTO: a bad record or an
 * alert. Drain afterwards (a key update may queue a record). */
int dcr_tls_engine_read(dcr_tls_engine *e, void *buf, size_t cap, dcr_err *err);
/* Encrypts n bytes of plaintext (after the handshake) into the engine's
 * output: all of them, or an error. Drain afterwards. */
int dcr_tls_engine_write(dcr_tls_engine *e, const void *p, size_t n, dcr_err *err);
/* Queues close_notify (drain afterwards). Idempotent. */
void dcr_tls_engine_close(dcr_tls_engine *e);

/* Bytes waiting to be sent to the peer. */
size_t dcr_tls_engine_pending(const dcr_tls_engine *e);
/* Moves up to cap bytes to send into buf; returns the count. */
size_t dcr_tls_engine_drain(dcr_tls_engine *e, void *buf, size_t cap);
/* Moves every byte to send to the end of out (into an empty out without
 * a copy: the buffers are swapped). */
void dcr_tls_engine_drain_all(dcr_tls_engine *e, dcr_buf *out);
/* Bytes held in the engine's buffers: fed, not yet consumed, plus
 * waiting to be sent. */
size_t dcr_tls_engine_buffered(const dcr_tls_engine *e);

/* The channel binding of the session (RFC 9266 tls-exporter), after the
 * handshake: DCR_ESTATE before it. */
int dcr_tls_engine_binding(dcr_tls_engine *e, uint8_t out[DCR_TLS_BINDING_BYTES], dcr_err *err);
/* The fingerprint of the peer's certificate (a client: the server's),
 * after the handshake; DCR_EPROTO if the peer sent none. */
int dcr_tls_engine_peer_fingerprint(dcr_tls_engine *e, uint8_t fp[DCR_SHA256_BYTES], dcr_err *err);

/* ---- the blocking client ---------------------------------------------------- */

typedef struct dcr_tls_client dcr_tls_client;

/* Runs the TLS 1.3 handshake as a client over fd (a connected stream
 * socket, blocking; the caller keeps owning it and closes it after
 * dcr_tls_client_free). Waits at most as the fd's SO_RCVTIMEO and
 * SO_SNDTIMEO allow (-ETIMEDOUT). server_name (may be NULL) is sent as SNI
 * unless it is an IP address; it is used in messages. On success *out is
 * the session and fp the fingerprint of the server's key: the caller
 * compares it with the pinned one and frees the session without sending
 * anything if it differs (nothing of the caller's has been sent, only the
 * handshake). No certificate chain is checked: the fingerprint is the
 * server's identity. Errors: DCR_EPROTO (the server is not TLS 1.3, sent
 * an alert...), -ECONNRESET / -EPIPE (closed during the handshake),
 * -ETIMEDOUT, -errno; the message names server_name. */
int dcr_tls_client_connect(int fd, const char *server_name, dcr_tls_client **out,
                           uint8_t fp[DCR_SHA256_BYTES], dcr_err *err);
/* Sends all n bytes (blocking). -EPIPE / -ECONNRESET when the server
 * closed, -ETIMEDOUT past SO_SNDTIMEO, DCR_EPROTO. Never raises SIGPIPE.
 * Encrypts up to 256 KiB before handing it to the socket (what the
 * client holds at most), so large sends cost few system calls. */
int dcr_tls_client_send(dcr_tls_client *c, const void *p, size_t n, dcr_err *err);
/* The same for the pieces of iov in order, as one stream (a frame's head,
 * the caller's buffer and its tail without copying them together). */
int dcr_tls_client_sendv(dcr_tls_client *c, const struct iovec *iov, size_t iovcnt, dcr_err *err);
/* Receives up to cap bytes (blocking until at least one, or the end).
 * Returns the count (> 0), 0 at the end of the stream (close_notify or
 * the connection closed), -ETIMEDOUT past SO_RCVTIMEO, DCR_EPROTO (a bad
 * record, an alert), -errno. */
int dcr_tls_client_recv(dcr_tls_client *c, void *buf, size_t cap, dcr_err *err);
/* The channel binding (RFC 9266) of this connection. */
void dcr_tls_client_binding(const dcr_tls_client *c, uint8_t out[DCR_TLS_BINDING_BYTES]);
/* Sends close_notify (best effort, never blocks for long: MSG_DONTWAIT)
 * and frees the session; the fd stays open (the caller's). NULL: nothing. */
void dcr_tls_client_free(dcr_tls_client *c);

/* Tests only: dcr_tls_client_connect offering TLS 1.2 at most, to check
 * that a server refuses it. */
int dcr__tls_client_connect_tls12(int fd, dcr_tls_client **out, dcr_err *err);

#endif
