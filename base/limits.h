/* limits.h: every limit on what comes from outside, in one place.
 * Each module keeps its own section; units are last in names. */
#ifndef DCR_LIMITS_H
#define DCR_LIMITS_H

/* base */
#define DCR_ERR_MSG_BYTES 512

/* msgpack / events */
#define DCR_EVENT_BYTES_MAX (4u * 1024 * 1024) /* one envelope */
#define DCR_MP_DEPTH_MAX 16u
#define DCR_MP_ELEMS_MAX 100000u

/* protocol */
#define DCR_FRAME_BYTES_MAX (DCR_EVENT_BYTES_MAX + 64u * 1024)
#define DCR_CHUNK_BYTES (1024u * 1024)

#endif
