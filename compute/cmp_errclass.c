/* cmp_errclass.c: the data-free class of a run's error.
 *
 * The message of a failed run can hold data: SQLite quotes values in some
 * errors ("JSON path error near '<a value>'"), and a query can make any
 * value the argument of such an error on purpose. So what leaves a run is
 * a class from the fixed vocabulary below, never the message: run.failed
 * events, dcrd's log and every participant see only the class
 * (docs/privacy.md, "Errors"). The class is chosen from the error code and
 * from fixed phrases of the message; whatever the message says, the result
 * is one of the constant strings of this file. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "compute_sql.h"

static const char *const classes[] = {
    "time limit",   "memory limit",  "row limit",      "size limit",
    "sql error",         "sql error: json path", "sql error: malformed json",
    "sql error: integer overflow",        "sql error: invalid text", "sql error: too big",
    "sql error: not allowed",             "privacy filter", "input unavailable",
    "not supported",     "storage error: Input/output error",
    "storage error: No space left on device", "internal error", CMP_ERRCLASS_UNRECORDABLE,
    /* python and r runs (docs/compute.md) */
    "script error", "cpu limit", "process limit", "output limit", "tmp limit",
    "output rule", "script result invalid", "sandbox unavailable", "limit past host maximum",
    /* synthetic runs */
    "too few rows",
    /* SQL runs: temporary files past their quota (cmp_tmpvfs.c) */
    "temp disk limit"};

const char *cmp_error_class(const dcr_err *err)
{
	const char *m = err ? err->msg : "";
	switch (err ? err->code : DCR_EINTERNAL) {
	case DCR_ETIMEOUT:
		return "time limit";
	case DCR_ELIMIT:
		if (strstr(m, "temporary disk limit")) /* cmp_sql.c's tmp_error */
			return "temp disk limit";
		if (strstr(m, "host's maximum")) /* jobs.c, a definition's limit */
			return "limit past host maximum";
		if (strstr(m, "memory"))
			return "memory limit";
		/* the sandbox's messages name the limit (compute_sandbox.h);
		 * no SQL limit message holds these words */
		if (strstr(m, "CPU") || strstr(m, "cpu"))
			return "cpu limit";
		if (strstr(m, "process"))
			return "process limit";
		if (strstr(m, "tmp"))
			return "tmp limit";
		if (strstr(m, "output") || strstr(m, "file size"))
			return "output limit";
		if (strstr(m, "row limit"))
			return "row limit";
		return "size limit";
	case DCR_EDENIED:
		if (strstr(m, "privacy filter"))
			return "privacy filter";
		return "sql error: not allowed";
	case DCR_ESQL:
		if (strstr(m, "JSON path error"))
			return "sql error: json path";
		if (strstr(m, "malformed JSON"))
			return "sql error: malformed json";
		if (strstr(m, "integer overflow"))
			return "sql error: integer overflow";
		if (strstr(m, "not valid UTF-8"))
			return "sql error: invalid text";
		if (strstr(m, "too big"))
			return "sql error: too big";
		return "sql error";
	case DCR_ESCRIPT:
		return "script error";
	case DCR_EOUTPUT:
		/* jobs.c words the validation of the tabular result so */
		if (strstr(m, "the tabular result"))
			return "script result invalid";
		return "output rule";
	case DCR_EUNAVAIL:
		return "sandbox unavailable";
	case DCR_ESTATE:
		if (strstr(m, "not supported"))
			return "not supported";
		return "input unavailable";
	case DCR_EINVALID:
		/* cmp_synth_run's minimum (DCR_SYNTH_ROWS_MIN) */
		if (strstr(m, "synthetic: the input has fewer than"))
			return "too few rows";
		return "input unavailable";
	case DCR_ENOTFOUND:
	case DCR_EINTEGRITY:
	case DCR_ECRYPTO:
	case DCR_ESTORE:
	case DCR_ECSV:
		return "input unavailable";
	/* dcrd's own storage failed during the run (a result blob, a temp
	 * file): the system error says nothing about the data, and the
	 * operator needs to know the disk is the cause. */
	case -EIO:
		return "storage error: Input/output error";
	case -ENOSPC:
	case -EDQUOT:
		return "storage error: No space left on device";
	default:
		return "internal error";
	}
}

bool cmp_error_class_valid(const char *s)
{
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strcmp(s, classes[i]) == 0)
			return true;
	return false;
}
