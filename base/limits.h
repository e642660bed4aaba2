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

/* room (definitions and event bodies, room/) */
#define DCR_RM_DEF_BYTES_MAX (1024u * 1024)       /* definition JSON text */
#define DCR_RM_ROOM_NAME_BYTES_MAX 128u
#define DCR_RM_NAME_BYTES_MAX 63u                 /* dataset/column/computation */
#define DCR_RM_DESCRIPTION_BYTES_MAX 4096u
#define DCR_RM_EMAIL_BYTES_MAX 254u
#define DCR_RM_PARTICIPANTS_MAX 64u
#define DCR_RM_DATASETS_MAX 64u
#define DCR_RM_COMPUTATIONS_MAX 64u
#define DCR_RM_COLUMNS_MAX 256u                   /* per dataset */
#define DCR_RM_LIST_MAX 256u                      /* owner_of, inputs, mask, ... */
#define DCR_RM_QUERY_BYTES_MAX (64u * 1024)
#define DCR_RM_SCRIPT_BYTES_MAX (256u * 1024)
#define DCR_RM_MIN_ROWS_MAX 1000000000LL          /* privacy.min_rows_aggregated */
#define DCR_RM_EPSILON_MAX 100.0                  /* synthetic epsilon */
#define DCR_RM_REASON_BYTES_MAX 1024u             /* room.stopped reason */
#define DCR_RM_ERROR_BYTES_MAX 4096u              /* run.failed error */
#define DCR_RM_BLOB_ID_BYTES_MAX 128u
#define DCR_RM_FILE_NAME_BYTES_MAX 255u
#define DCR_RM_RUN_META_BYTES_MAX (64u * 1024)    /* run.completed schema, inputs */
#define DCR_RM_RUNS_MAX 10000000u                 /* runs per room */

#endif
