/* fs_gen.c: the generated text files of the mounted room: README,
 * status, datasets/NAME/schema.json and status, the computations' sources
 * and status, and stats.json (from the daemon). Made from the folded room
 * state on each open, never stored; fs__backend_size gives the files the
 * daemon makes their true size before they are first opened. */
#include "fs_int.h"

/* ---- generated contents (f->mu held) --------------------------------------- */

static void gen_roles(fs *f, dcr_buf *b, const char *indent)
{
	const rm_def *def = f->st.def;
	const rm_participant *me = def ? rm_def_participant(def, f->opt.me) : NULL;
	bool any = false;
	if (fs__is_creator(f)) {
		dcr_buf_printf(b, "%screator of the room (you edit the draft and publish it)\n",
		               indent);
		any = true;
	}
	if (me) {
		for (size_t i = 0; i < me->nowner_of; i++)
			dcr_buf_printf(b, "%sdata owner of dataset %s\n", indent, me->owner_of[i]);
		for (size_t i = 0; i < me->nanalyst_of; i++)
			dcr_buf_printf(b, "%sanalyst of computation %s\n", indent,
			               me->analyst_of[i]);
		dcr_buf_printf(b,
		               "%sparticipant and auditor (you read the definition, the log "
		               "and the shared statistics)\n",
		               indent);
		any = true;
	}
	if (!any)
		dcr_buf_printf(b, "%snone: you are not a participant of this room\n", indent);
}

/* What an owner of an append dataset can do in its drop folder. */
static void gen_drop_help(dcr_buf *b, const char *m, const char *ds)
{
	dcr_buf_printf(b,
	               "  cp export_2026-12-01.csv %s/datasets/%s/   add a drop to %s (a drop "
	               "folder:\n"
	               "      the dataset is the union of its files, each checked on its own; "
	               "the same\n"
	               "      file again changes nothing; a bad file makes cp fail and changes "
	               "nothing)\n",
	               m, ds, ds);
	dcr_buf_printf(b, "  rm %s/datasets/%s/FILE           withdraw that drop of %s\n", m, ds,
	               ds);
}

static void gen_readme(fs *f, dcr_buf *b)
{
	const rm_def *def = f->st.def;
	const char *m = f->mountpoint ? f->mountpoint : ".";
	const rm_participant *me = def ? rm_def_participant(def, f->opt.me) : NULL;
	char hex[ES_ROOM_HEX_BYTES];
	es_room_format(f->opt.room, hex);
	dcr_buf_printf(b, "DATA CLEAN ROOM %s\n\n", def ? def->name : hex);
	if (def && def->description && def->description[0])
		dcr_buf_printf(b, "%s\n\n", def->description);
	dcr_buf_printf(b, "Room id %s, %s, %llu events.\n", hex, rm_status_name(f->st.status),
	               (unsigned long long)f->st.size);
	if (f->daemon_err) {
		char ts[32];
		fs__iso_time(f->daemon_down_ms, ts);
		dcr_buf_printf(b,
		               "\nWARNING: the daemon does not answer since %s (%s).\n"
		               "Everything here is the room as of event %llu; nothing can be\n"
		               "provisioned or run until it is back (cat %s/status).\n\n",
		               ts, f->daemon_err, (unsigned long long)f->nentries, m);
	}
	if (f->st.status == RM_STOPPED)
		dcr_buf_printf(b,
		               "The room is stopped: nothing more can be provisioned or run; the "
		               "log, the statistics\nand the results stay readable.\n");
	dcr_buf_printf(b, "You are %s. Your roles:\n", me ? me->email : "(not a participant)");
	gen_roles(f, b, "  - ");
	dcr_buf_append_str(b, "\nWHAT IS HERE\n"
	                      "  README        this text\n"
	                      "  room.json     the room definition (the contract)\n"
	                      "  status        draft | published | stopped, events, Merkle root, "
	                      "last error\n"
	                      "  ctl           write publish, stop or test (the creator)\n"
	                      "  audit.log     one line per event: time, who, what\n"
	                      "  events/       every signed event as a raw file, for auditors\n"
	                      "  datasets/     one folder per dataset: schema.json, status, "
	                      "stats.json\n"
	                      "  computations/ one folder per computation: its source, run, "
	                      "status, result.csv;\n"
	                      "                python and r also result/ (every output file) "
	                      "and log (when allowed)\n"
	                      "  requests/     proposals of new computations: cp a request "
	                      "file here;\n"
	                      "                requests/ID/ has request.json, status, approve, "
	                      "reject,\n"
	                      "                withdraw (write a reason)\n"
	                      "  dev/          development runs (settings.development): write "
	                      "NAME.sql, NAME.py\n"
	                      "                or NAME.R to run it on data you may read; "
	                      "NAME.out/ has the result\n");
	dcr_buf_append_str(b, "\nWHAT YOU CAN DO\n");
	dcr_buf_printf(b, "  cat %s/audit.log                 who did what, when\n", m);
	if (fs__is_creator(f) && f->st.status == RM_DRAFT) {
		dcr_buf_printf(b,
		               "  cp room.json %s/room.json        save a new draft "
		               "(errors: cat %s/status)\n",
		               m, m);
		dcr_buf_printf(b,
		               "  echo test > %s/ctl; cat %s/test.out   test every "
		               "computation on empty inputs\n",
		               m, m);
		dcr_buf_printf(b, "  echo publish > %s/ctl            freeze the contract\n", m);
	}
	if (fs__is_creator(f) && f->st.status != RM_STOPPED)
		dcr_buf_printf(b, "  echo stop > %s/ctl               stop the room\n", m);
	if (me && f->st.status != RM_STOPPED) {
		for (size_t i = 0; i < me->nowner_of; i++) {
			const char *ds = me->owner_of[i];
			if (fs__is_append(f, ds)) {
				gen_drop_help(b, m, ds);
				continue;
			}
			dcr_buf_printf(b,
			               "  cp %s.csv %s/datasets/%s/   provision %s (rsync and "
			               "temp-then-rename drops work too;\n"
			               "      a bad file makes cp fail: cat "
			               "%s/datasets/%s/status)\n",
			               ds, m, ds, ds, m, ds);
			dcr_buf_printf(b, "  rm %s/datasets/%s/FILE           deprovision %s\n", m,
			               ds, ds);
		}
		for (size_t i = 0; i < me->nanalyst_of; i++) {
			const char *c = me->analyst_of[i];
			const rm_computation *cp = def ? rm_def_computation(def, c) : NULL;
			if (cp && (cp->kind == RM_COMP_PYTHON || cp->kind == RM_COMP_R) &&
			    !cp->ncolumns)
				dcr_buf_printf(b,
				               "  echo > %s/computations/%s/run && ls "
				               "%s/computations/%s/result/\n",
				               m, c, m, c);
			else
				dcr_buf_printf(b,
				               "  echo > %s/computations/%s/run && cat "
				               "%s/computations/%s/result.csv\n",
				               m, c, m, c);
		}
	}
	if (me && def && def->development && f->st.status == RM_PUBLISHED) {
		dcr_buf_printf(b,
		               "  cp q.sql %s/dev/ && cat %s/dev/q.out/result.csv   your own "
		               "SQL, unfiltered,\n"
		               "      over the datasets you own and the results you read (its "
		               "text goes into the log)\n",
		               m, m);
		dcr_buf_printf(b,
		               "  cp a.py %s/dev/ && ls %s/dev/a.out/   Python or R; first line "
		               "\"# inputs: x, y\"\n"
		               "      names what it reads under /input/NAME/ (see "
		               "docs/compute.md); its files,\n"
		               "      stdout and stderr land in a.out/ (yours alone)\n",
		               m, m);
	}
	if (rm_check_request(&f->st, f->opt.me, NULL) == 0) {
		dcr_buf_printf(b,
		               "  cp request.json %s/requests/     propose new computations "
		               "(docs/room-format.md\n"
		               "      \"Requests\"); the owners of the data they read "
		               "approve with\n"
		               "      echo REASON > %s/requests/ID/approve (or reject); a "
		               "sole owner may\n"
		               "      first echo > %s/requests/ID/preview/run\n",
		               m, m, m);
	}
	if (def) {
		dcr_buf_append_str(b, "\nDATASETS\n");
		for (size_t i = 0; i < def->ndatasets; i++) {
			const rm_dataset *ds = &def->datasets[i];
			const rm_provision *p = rm_state_provision(&f->st, ds->name);
			dcr_buf_printf(b, "  %-24s %s", ds->name,
			               p ? "provisioned" : "not provisioned");
			if (p && ds->append)
				dcr_buf_printf(b, ": %zu drops, %llu rows (a drop folder: the union of "
				                  "its files)",
				               p->ndrops, (unsigned long long)p->rows);
			else if (p)
				dcr_buf_printf(b, " by %s", ACTOR_NAME(f, p->by));
			else if (ds->append)
				dcr_buf_append_str(b, " (a drop folder: no drops yet)");
			dcr_buf_append_str(b, "\n");
		}
		dcr_buf_append_str(b, "\nCOMPUTATIONS\n");
		for (size_t i = 0; i < def->ncomputations; i++) {
			const rm_computation *c = &def->computations[i];
			dcr_buf_printf(b, "  %-24s %s%s\n", c->name, rm_compkind_name(c->kind),
			               rm_may_read_result(&f->st, f->opt.me, c->name)
			                   ? " (you run it and read its results)"
			                   : "");
		}
	}
	bool scripts = false;
	for (size_t i = 0; def && i < def->ncomputations; i++)
		scripts = scripts || def->computations[i].kind == RM_COMP_PYTHON ||
		          def->computations[i].kind == RM_COMP_R;
	if (scripts)
		dcr_buf_append_str(
		    b, "\nPYTHON AND R\n"
		       "  A script runs in a sandbox (no network, nothing of the host) and sees:\n"
		       "    /input/script.py or /input/script.R   itself\n"
		       "    /input/NAME/dataset.csv   a table dataset, or the result of an sql "
		       "computation\n"
		       "                              (header row; header only when not "
		       "provisioned)\n"
		       "    /input/NAME/FILE          a file dataset, under its provisioned name\n"
		       "                              (an empty directory when not provisioned)\n"
		       "    /input/NAME/...           the output files of a python or r "
		       "computation\n"
		       "  only for the inputs it declares. Everything it writes under /output/ "
		       "is its\n"
		       "  result: computations/NAME/result/ (analysts). With \"columns\" in the "
		       "definition,\n"
		       "  /output/dataset.csv is checked against them and is result.csv, which "
		       "SQL\n"
		       "  computations may read. stdout and stderr are in computations/NAME/log "
		       "only\n"
		       "  as the definition's \"logs\" allows (never by default: prints can "
		       "leak rows).\n");
	dcr_buf_append_str(b, "\nWhat your roles do not allow fails with \"Permission denied\" "
	                      "(EACCES);\nother parties' rows are never shown here.\n");
}

static void gen_status(fs *f, dcr_buf *b)
{
	char hex[65];
	if (f->root_size != f->nentries) {
		es_merkle_root((const uint8_t(*)[32])f->leaves, f->nentries, f->root_hash);
		f->root_size = f->nentries;
	}
	dcr_buf_printf(b, "status: %s\n", rm_status_name(f->st.status));
	if (f->daemon_err) {
		char ts[32];
		fs__iso_time(f->daemon_down_ms, ts);
		dcr_buf_printf(b,
		               "daemon: unreachable since %s: %s (shown: the room as of the "
		               "events below)\n",
		               ts, f->daemon_err);
	} else {
		dcr_buf_append_str(b, "daemon: connected\n");
	}
	dcr_buf_printf(b, "events: %llu\n", (unsigned long long)f->nentries);
	dcr_hex_encode(f->root_hash, 32, hex);
	dcr_buf_printf(b, "merkle_root: %s\n", hex);
	if (f->st.def) {
		dcr_hex_encode(f->st.def_sha256, 32, hex);
		dcr_buf_printf(b, "definition_sha256: %s\n", hex);
	}
	if (f->st.stop_reason)
		dcr_buf_printf(b, "stop_reason: %s\n", f->st.stop_reason);
	if (f->fatal)
		dcr_buf_printf(b, "replay_error: %s\n", f->fatal);
	if (fs__refused(f))
		dcr_buf_printf(b, "host_refused: %s\n", atomic_load(&f->refused));
	if (f->last_error)
		dcr_buf_printf(b, "last_error: %s\n", f->last_error);
}

static void gen_schema(fs *f, const char *dsname, dcr_buf *b)
{
	const rm_dataset *ds = rm_def_dataset(f->st.def, dsname);
	dcr_buf_append_str(b, "{\n  \"name\": ");
	fs__json_str(b, ds->name);
	dcr_buf_printf(b, ",\n  \"kind\": \"%s\",\n  \"required\": %s,\n  \"share_statistics\": %s",
	               rm_dskind_name(ds->kind), ds->required ? "true" : "false",
	               ds->share_statistics ? "true" : "false");
	dcr_buf_append_str(b, ",\n  \"columns\": [");
	for (size_t i = 0; i < ds->ncolumns; i++) {
		const rm_column *c = &ds->columns[i];
		dcr_buf_append_str(b, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
		fs__json_str(b, c->name);
		dcr_buf_printf(b, ", \"type\": \"%s\"", cmp_type_name(c->type));
		if (c->format != CMP_FMT_NONE)
			dcr_buf_printf(b, ", \"format\": \"%s\"", cmp_format_name(c->format));
		dcr_buf_printf(b, ", \"nullable\": %s}", c->nullable ? "true" : "false");
	}
	dcr_buf_append_str(b, ds->ncolumns ? "\n  ]\n}\n" : "]\n}\n");
}

/* The status of an append dataset: the union, then one line per drop in
 * drop order (docs/mount.md "Drop folders"). */
static void gen_drops_status(fs *f, const rm_provision *p, dcr_buf *b)
{
	char ts[32], hex[65];
	dcr_buf_append_str(b, "drops: append (the dataset is the union of its drops)\n");
	if (!p) {
		dcr_buf_append_str(b, "state: not provisioned (no drops)\n");
		return;
	}
	dcr_hex_encode(p->sha256, 32, hex);
	dcr_buf_printf(b,
	               "state: provisioned\nrows: %llu\nbytes: %llu\nsha256: %s (the union: "
	               "SHA-256 of the drops' sha256 in drop order)\ndrop_count: %zu\n",
	               (unsigned long long)p->rows, (unsigned long long)p->bytes, hex, p->ndrops);
	for (size_t i = 0; i < p->ndrops; i++) {
		const rm_drop *d = &p->drops[i];
		fs__iso_time(d->ts_ms, ts);
		dcr_hex_encode(d->sha256, 32, hex);
		dcr_buf_printf(b, "drop: %s: %llu rows, %llu bytes, sha256 %s, by %s at %s (event %llu)\n",
		               d->file, (unsigned long long)d->rows, (unsigned long long)d->bytes, hex,
		               ACTOR_NAME(f, d->by), ts, (unsigned long long)d->seq);
		const pdep *pd = fs__pdep_for(f, p->dataset, d->file);
		if (pd && memcmp(pd->sha256, d->sha256, 32) == 0) {
			fs__iso_time(pd->at_ms, ts);
			dcr_buf_printf(b, "pending_rm: %s removed at %s; %s\n", d->file, ts,
			               pd->uploads ? "a new file of that name is being written: it "
			                             "replaces this drop if accepted, otherwise the "
			                             "drop stays"
			                           : "withdrawn in a moment unless a new file of that "
			                             "name is written first (a rejected one keeps "
			                             "this drop)");
		}
	}
}

static void gen_ds_status(fs *f, const char *dsname, dcr_buf *b)
{
	const rm_def *def = f->st.def;
	const rm_provision *p = rm_state_provision(&f->st, dsname);
	char ts[32], hex[65];
	dcr_buf_printf(b, "dataset: %s\nowners:", dsname);
	for (size_t i = 0; i < def->nparticipants; i++)
		if (rm_is_owner(def, def->participants[i].key, dsname))
			dcr_buf_printf(b, " %s", def->participants[i].email);
	dcr_buf_append_str(b, "\n");
	const rm_dataset *dsd = rm_def_dataset(def, dsname);
	if (dsd && dsd->epsilon_budget) {
		/* the budget ledger, replayed from the log (docs/privacy.md) */
		uint64_t spent = rm_state_epsilon_spent(&f->st, dsname);
		char x[32], y[32], z[32];
		dcr_buf_printf(b, "epsilon_budget: %s\nepsilon_spent: %s\nepsilon_left: %s\n",
		               rm_epsilon_format(dsd->epsilon_budget, x, sizeof x),
		               rm_epsilon_format(spent, y, sizeof y),
		               rm_epsilon_format(dsd->epsilon_budget - spent, z, sizeof z));
	}
	if (dsd && dsd->append) {
		gen_drops_status(f, p, b);
	} else if (p) {
		fs__iso_time(p->ts_ms, ts);
		dcr_hex_encode(p->sha256, 32, hex);
		dcr_buf_printf(b,
		               "state: provisioned\nby: %s\nat: %s (event %llu)\nrows: %llu\n"
		               "bytes: %llu\nsha256: %s\nfile: %s\n",
		               ACTOR_NAME(f, p->by), ts, (unsigned long long)p->seq,
		               (unsigned long long)p->rows, (unsigned long long)p->bytes, hex,
		               p->file ? p->file : "");
	} else {
		dcr_buf_append_str(b, "state: not provisioned\n");
	}
	const pdep *pd = fs__pdep_find(f, dsname);
	if (pd && p && memcmp(pd->sha256, p->sha256, 32) == 0) {
		fs__iso_time(pd->at_ms, ts);
		dcr_buf_printf(b, "pending_rm: %s removed at %s; %s\n", pd->file, ts,
		               pd->uploads ? "a new file is being written: it replaces this "
		                             "one if accepted, otherwise this data stays"
		                           : "deprovisioned in a moment unless a new file is "
		                             "written first (a rejected one keeps this data)");
	}
	for (lfile *l = f->lfiles; l; l = l->next)
		if (l->dataset && strcmp(l->dataset, dsname) == 0 && !l->temp &&
		    l->state == LF_STREAM)
			dcr_buf_printf(b, "uploading: %s (%llu bytes so far)\n", l->name,
			               (unsigned long long)l->size);
	const char *e = fs__get_dserr(f, dsname);
	if (e)
		dcr_buf_printf(b, "last_upload: %s\n", e);
}

static void gen_comp_source(fs *f, const char *comp, dcr_buf *b)
{
	const rm_computation *c = rm_def_computation(f->st.def, comp);
	if (c->kind == RM_COMP_SQL && c->query) {
		dcr_buf_append_str(b, c->query);
	} else if ((c->kind == RM_COMP_PYTHON || c->kind == RM_COMP_R) && c->script) {
		dcr_buf_append_str(b, c->script);
	} else if (c->kind == RM_COMP_SYNTHETIC) {
		dcr_buf_append_str(b, "{\"input\": ");
		fs__json_str(b, c->input ? c->input : "");
		dcr_buf_append_str(b, ", \"mask\": [");
		for (size_t i = 0; i < c->nmask; i++) {
			if (i)
				dcr_buf_append_str(b, ", ");
			fs__json_str(b, c->mask[i]);
		}
		dcr_buf_printf(b, "], \"epsilon\": %g}", c->epsilon);
	}
	if (b->len && b->data[b->len - 1] != '\n')
		dcr_buf_append_u8(b, '\n');
}

/* The part of a computation's status known from the log. */
static void gen_comp_status(fs *f, const char *comp, const fs_run_status *live, dcr_buf *b)
{
	const rm_run *r = rm_state_last_run(&f->st, comp);
	char ts[32];
	dcr_buf_printf(b, "computation: %s\n", comp);
	const char *state = r ? (r->state == RM_RUN_DONE     ? "done"
	                         : r->state == RM_RUN_FAILED ? "failed"
	                                                     : "queued")
	                      : "none";
	if (live && live->state[0] && r && strcmp(live->run_id, r->id) == 0)
		state = live->state; /* adds "running" */
	dcr_buf_printf(b, "state: %s\n", state);
	if (!r)
		return;
	fs__iso_time(r->requested_ts_ms, ts);
	dcr_buf_printf(b, "run: %s\nrequested_by: %s\nrequested_at: %s\n", r->id,
	               ACTOR_NAME(f, r->by), ts);
	if (r->state == RM_RUN_DONE) {
		dcr_buf_printf(b,
		               "rows: %llu\nsuppressed: %llu\nresult_bytes: %llu\n"
		               "duration_ms: %llu\n",
		               (unsigned long long)r->rows, (unsigned long long)r->suppressed,
		               (unsigned long long)r->result_bytes,
		               (unsigned long long)r->duration_ms);
		if (r->suppressed)
			dcr_buf_printf(b,
			               "note: %llu output rows stood for fewer people than "
			               "the privacy threshold and were suppressed\n",
			               (unsigned long long)r->suppressed);
	} else if (r->state == RM_RUN_FAILED) {
		dcr_buf_printf(b, "error: %s\n", r->error ? r->error : "");
		if (live && live->detail[0] && strcmp(live->run_id, r->id) == 0)
			dcr_buf_printf(b, "detail: %s\n", live->detail);
	}
	const rm_run *d = fs__last_done_run(f, comp);
	if (d && d != r)
		dcr_buf_printf(b, "result.csv: from run %s\n", d->id);
}

/* Content of a file generated from the state alone; -ENOSYS for kinds
 * whose content needs the backend. f->mu held. */
int fs__gen_local(fs *f, const struct desc *d, dcr_buf *b)
{
	switch (d->kind) {
	case K_README:
		gen_readme(f, b);
		return 0;
	case K_ROOMJSON:
		if (f->st.def_json)
			dcr_buf_append_str(b, f->st.def_json);
		return 0;
	case K_REQ_TEXT:
	case K_REQ_STATUS:
		return fs__req_gen(f, d, b);
	case K_STATUS:
		gen_status(f, b);
		return 0;
	case K_AUDIT:
		dcr_buf_append(b, f->audit.data, f->audit.len);
		return 0;
	case K_TESTOUT:
		dcr_buf_append(b, f->test_out.data, f->test_out.len);
		return 0;
	case K_EVENT:
		dcr_buf_append(b, f->entries[d->seq].data, f->entries[d->seq].len);
		return 0;
	case K_DS_SCHEMA:
		gen_schema(f, d->ds, b);
		return 0;
	case K_DS_STATUS:
		gen_ds_status(f, d->ds, b);
		return 0;
	case K_COMP_SOURCE:
		gen_comp_source(f, d->comp, b);
		return 0;
	default:
		return -ENOSYS;
	}
}

/* Content of stats.json or of a computation's status: both need the
 * daemon. Records its size for getattr. f->mu not held. */
int fs__gen_backend(fs *f, uint64_t ino, enum kind kind, const char *name, dcr_buf *out,
                    dcr_err *err)
{
	int rc = 0;
	if (kind == K_DS_STATS) {
		rc = f->be.stats(f->be.ctx, name, out, err);
	} else {
		fs_run_status live;
		memset(&live, 0, sizeof live);
		dcr_err lerr = {0};
		int lrc = f->be.run_status(f->be.ctx, name, &live, &lerr);
		if (lrc == 0 && live.run_id[0]) {
			/* the log may already say more than our last poll */
			dcr_err ferr = {0};
			fs__fetch_apply(f, &ferr);
		}
		struct desc d;
		pthread_mutex_lock(&f->mu);
		if (fs__resolve(f, ino, &d) == 0)
			gen_comp_status(f, name, lrc == 0 ? &live : NULL, out);
		pthread_mutex_unlock(&f->mu);
	}
	if (rc == 0) {
		pthread_mutex_lock(&f->mu);
		fs__node_at(f, ino)->last_size = out->len;
		fs__node_at(f, ino)->size_gen = f->nentries + 1;
		pthread_mutex_unlock(&f->mu);
	}
	return rc;
}

/* The true size of a file made by the daemon (stats.json, a computation's
 * status), made when the log changed since it was last made: `tar -c`,
 * `rsync` and backups copy st_size bytes. f->mu not held. */
void fs__backend_size(fs *f, fs_attr *a)
{
	struct desc d;
	char *name = NULL;
	enum kind k = K_NONE;
	pthread_mutex_lock(&f->mu);
	if (fs__resolve(f, a->ino, &d) == 0 && (d.kind == K_DS_STATS || d.kind == K_COMP_STATUS) &&
	    fs__may_read(f, &d) && fs__node_at(f, a->ino)->size_gen != f->nentries + 1) {
		k = d.kind;
		name = dcr_strdup(d.ds ? d.ds : d.comp);
	}
	pthread_mutex_unlock(&f->mu);
	if (!name)
		return;
	dcr_buf b;
	dcr_buf_init(&b);
	dcr_err err = {0};
	if (fs__gen_backend(f, a->ino, k, name, &b, &err) == 0)
		a->size = b.len;
	dcr_buf_release(&b);
	free(name);
}
