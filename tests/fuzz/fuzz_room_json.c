/* fuzz_room_json.c: the room definition parser (room/def.c), whose input
 * is a JSON document written by a room's creator and replayed by every
 * participant.
 *
 * Oracles for an accepted definition: rm_def_to_json prints it, the
 * printout parses again and prints identically (a fixed point: the printer
 * and the parser agree on every field); rm_def_topo orders every
 * computation after those it reads; every name resolves through the
 * lookups; every dataset has an owner and every computation an analyst.
 * A refusal must say something (err.msg). */
#include "../../room/room.h"
#include "fuzz.h"

static void check_def(const rm_def *d)
{
	size_t *order = dcr_calloc(d->ncomputations + 1, sizeof *order);
	size_t *pos = dcr_calloc(d->ncomputations + 1, sizeof *pos);
	bool *used = dcr_calloc(d->ndatasets + 1, sizeof *used);
	size_t i, j;

	FUZZ_CHECK(rm_room_name_valid(d->name));
	FUZZ_CHECK(rm_def_topo(d, order) == 0);
	for (i = 0; i < d->ncomputations; i++)
		pos[order[i]] = i;
	for (i = 0; i < d->ncomputations; i++) {
		const rm_computation *c = &d->computations[i];
		bool has_analyst = false;

		FUZZ_CHECK(rm_ident_valid(c->name));
		FUZZ_CHECK(rm_def_computation(d, c->name) == c);
		for (j = 0; j < c->ninputs; j++) {
			const rm_computation *up = rm_def_computation(d, c->inputs[j]);
			FUZZ_CHECK(up != NULL || rm_def_dataset(d, c->inputs[j]) != NULL);
			if (up)
				FUZZ_CHECK(pos[up - d->computations] < pos[i]);
		}
		for (j = 0; j < d->nparticipants; j++)
			if (rm_is_analyst(d, d->participants[j].key, c->name))
				has_analyst = true;
		FUZZ_CHECK(has_analyst);
		rm_def_datasets_read(d, c, used);
	}
	for (i = 0; i < d->ndatasets; i++) {
		const rm_dataset *ds = &d->datasets[i];
		bool has_owner = false;

		FUZZ_CHECK(rm_ident_valid(ds->name));
		FUZZ_CHECK(rm_def_dataset(d, ds->name) == ds);
		for (j = 0; j < d->nparticipants; j++)
			if (rm_is_owner(d, d->participants[j].key, ds->name))
				has_owner = true;
		FUZZ_CHECK(has_owner);
		if (ds->kind == RM_DS_TABLE) {
			cmp_column *cols = dcr_calloc(ds->ncolumns + 1, sizeof *cols);
			FUZZ_CHECK(ds->ncolumns >= 1);
			rm_dataset_columns(ds, cols);
			for (j = 0; j < ds->ncolumns; j++)
				FUZZ_CHECK(strcmp(cols[j].name, ds->columns[j].name) == 0);
			free(cols);
		}
	}
	for (i = 0; i < d->nparticipants; i++)
		FUZZ_CHECK(rm_def_participant(d, d->participants[i].key) == &d->participants[i]);
	free(order);
	free(pos);
	free(used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rm_def *d = NULL, *d2 = NULL;
	char *j1 = NULL, *j2 = NULL;
	dcr_err err;
	int rc;

	rc = rm_def_parse((const char *)data, size, &d, &err);
	if (rc != 0) {
		FUZZ_CHECK(d == NULL && err.code == rc && err.msg[0] != '\0');
		return 0;
	}
	check_def(d);
	/* The admission check (SQLite) may refuse a definition the rules
	 * accept; it must not crash, and it fills the result schemas on
	 * success. */
	if (rm_def_admit(d, &err) == 0)
		for (size_t i = 0; i < d->ncomputations; i++)
			FUZZ_CHECK(d->computations[i].kind != RM_COMP_SQL ||
			           d->computations[i].nresult_cols > 0);
	else
		FUZZ_CHECK(err.msg[0] != '\0');
	j1 = rm_def_to_json(d);
	FUZZ_CHECK(j1 != NULL);
	rc = rm_def_parse(j1, strlen(j1), &d2, &err);
	if (rc != 0) {
		fprintf(stderr, "fuzz_room_json: the printout does not parse again: %s\n%s",
		        err.msg, j1);
		abort();
	}
	j2 = rm_def_to_json(d2);
	if (strcmp(j1, j2) != 0) {
		fprintf(stderr, "fuzz_room_json: printout not a fixed point:\n%s\n---\n%s", j1, j2);
		abort();
	}
	free(j1);
	free(j2);
	rm_def_free(d);
	rm_def_free(d2);
	return 0;
}
