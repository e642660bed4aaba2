/* fs_nodes.c: the inode table and name resolution of the mounted room.
 *
 * Every path ever looked up gets an inode number for the life of the
 * mount (never reused), kept in a hash table of (parent, name). What a
 * node *is* is decided on each use by resolving its name against the
 * current room state (fs__resolve), so a dataset dropped by a new draft
 * simply stops resolving (ENOENT) and no cache of the state can go stale.
 * Also here: what this identity may read and write (modes), attributes,
 * lookup, getattr and directory listings. */
#include <sys/stat.h>

#include "fs_int.h"

/* ---- node table ------------------------------------------------------------ */

static uint64_t name_hash(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ parent;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ull;
	return h;
}

node *fs__node_at(fs *f, uint64_t ino)
{
	if (ino == 0 || ino > f->nnodes)
		return NULL;
	return &f->nodes[ino - 1];
}

static void bucket_insert(fs *f, uint64_t ino)
{
	node *n = fs__node_at(f, ino);
	size_t b = name_hash(n->parent, n->name) & (f->nbuckets - 1);
	n->hnext = f->buckets[b];
	f->buckets[b] = ino;
}

void fs__bucket_remove(fs *f, uint64_t ino)
{
	node *n = fs__node_at(f, ino);
	size_t b = name_hash(n->parent, n->name) & (f->nbuckets - 1);
	uint64_t *pp = &f->buckets[b];
	while (*pp && *pp != ino)
		pp = &fs__node_at(f, *pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	n->hnext = 0;
}

uint64_t fs__node_find(fs *f, uint64_t parent, const char *name)
{
	size_t b = name_hash(parent, name) & (f->nbuckets - 1);
	for (uint64_t i = f->buckets[b]; i; i = fs__node_at(f, i)->hnext) {
		node *n = fs__node_at(f, i);
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return i;
	}
	return 0;
}

uint64_t fs__node_get(fs *f, uint64_t parent, const char *name)
{
	uint64_t ino = fs__node_find(f, parent, name);
	if (ino)
		return ino;
	if (f->nnodes == f->cap_nodes) {
		f->cap_nodes = f->cap_nodes ? f->cap_nodes * 2 : 64;
		f->nodes = dcr_realloc(f->nodes, f->cap_nodes * sizeof *f->nodes);
	}
	if (f->nnodes + 1 > f->nbuckets) { /* keep load <= 1 */
		size_t nb = f->nbuckets ? f->nbuckets * 2 : 64;
		free(f->buckets);
		f->buckets = dcr_calloc(nb, sizeof *f->buckets);
		f->nbuckets = nb;
		for (size_t i = 0; i < f->nnodes; i++)
			if (f->nodes[i].name)
				bucket_insert(f, i + 1);
	}
	node *n = &f->nodes[f->nnodes++];
	memset(n, 0, sizeof *n);
	n->parent = parent;
	n->name = dcr_strdup(name);
	ino = f->nnodes;
	bucket_insert(f, ino);
	return ino;
}

/* Moves inode ino to (parent, name); whatever held that name loses it. */
void fs__node_move(fs *f, uint64_t ino, uint64_t parent, const char *name)
{
	uint64_t old = fs__node_find(f, parent, name);
	if (old == ino)
		return;
	if (old) {
		fs__bucket_remove(f, old);
		free(fs__node_at(f, old)->name);
		fs__node_at(f, old)->name = NULL;
	}
	node *n = fs__node_at(f, ino);
	fs__bucket_remove(f, ino);
	free(n->name);
	n->parent = parent;
	n->name = dcr_strdup(name);
	bucket_insert(f, ino);
}

/* ---- resolution ------------------------------------------------------------ */

static lfile *lfile_find(fs *f, uint64_t dir, const char *name)
{
	for (lfile *l = f->lfiles; l; l = l->next)
		if (l->dir == dir && strcmp(l->name, name) == 0)
			return l;
	return NULL;
}

static bool is_participant(const fs *f)
{
	return rm_may_read_room(&f->st, f->opt.me);
}

bool fs__is_creator(const fs *f)
{
	return f->st.status != RM_NONE && fs__key_eq(f->st.creator, f->opt.me);
}

static const char *comp_source_name(const rm_computation *c)
{
	switch (c->kind) {
	case RM_COMP_PYTHON:
		return "script.py";
	case RM_COMP_R:
		return "script.R";
	case RM_COMP_SYNTHETIC:
		return "synthetic.json";
	default:
		return "query.sql";
	}
}

const rm_run *fs__last_done_run(const fs *f, const char *comp)
{
	for (size_t i = f->st.nruns; i-- > 0;) {
		const rm_run *r = &f->st.runs[i];
		if (strcmp(r->computation, comp) == 0 && r->state == RM_RUN_DONE)
			return r;
	}
	return NULL;
}

const rm_run *fs__last_finished_run(const fs *f, const char *comp)
{
	for (size_t i = f->st.nruns; i-- > 0;) {
		const rm_run *r = &f->st.runs[i];
		if (strcmp(r->computation, comp) == 0 && r->state != RM_RUN_QUEUED)
			return r;
	}
	return NULL;
}

bool fs__result_files(const fs *f, const char *comp)
{
	const rm_computation *c = f->st.def ? rm_def_computation(f->st.def, comp) : NULL;
	return c && (c->kind == RM_COMP_PYTHON || c->kind == RM_COMP_R ||
	             c->kind == RM_COMP_SYNTHETIC);
}

/* Under result/: is path a file of the archive (1), a directory holding
 * some (2), or nothing (0)? */
static int rpath_kind(const rcache *c, const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < c->a.n; i++) {
		const dcr_archive_entry *e = &c->a.e[i];
		if (e->name_len == n && memcmp(e->name, path, n) == 0)
			return 1;
		if (n == 0 || (e->name_len > n && memcmp(e->name, path, n) == 0 && e->name[n] == '/'))
			return 2;
	}
	return 0;
}

static bool parse_event_name(const char *name, uint64_t *seq)
{
	if (strlen(name) != 18 || strcmp(name + 12, ".event") != 0)
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 12; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*seq = v;
	return true;
}

/* Resolves a child name of a resolved directory. f->mu held. */
int fs__resolve_child(fs *f, uint64_t dir, const struct desc *pd, const char *name, struct desc *d)
{
	memset(d, 0, sizeof *d);
	const rm_def *def = f->st.def;
	if (strlen(name) > FS_NAME_BYTES_MAX)
		return -ENAMETOOLONG;
	lfile *lf = lfile_find(f, dir, name);
	if (lf) {
		d->kind = K_LFILE;
		d->lf = lf;
		d->ds = pd->ds;
		return 0;
	}
	switch (pd->kind) {
	case K_ROOT: {
		static const struct {
			const char *name;
			enum kind kind;
		} top[] = {
		    {"README", K_README},
		    {"room.json", K_ROOMJSON},
		    {"status", K_STATUS},
		    {"ctl", K_CTL},
		    {"audit.log", K_AUDIT},
		    {"test.out", K_TESTOUT},
		    {"events", K_EVENTS},
		    {"datasets", K_DATASETS},
		    {"computations", K_COMPS},
		    {"requests", K_REQUESTS},
		    {"dev", K_DEV},
		};
		for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
			if (strcmp(name, top[i].name) != 0)
				continue;
			if (top[i].kind == K_TESTOUT && !f->have_test_out)
				return -ENOENT;
			d->kind = top[i].kind;
			return 0;
		}
		return -ENOENT;
	}
	case K_EVENTS:
		if (!parse_event_name(name, &d->seq) || d->seq >= f->nentries)
			return -ENOENT;
		d->kind = K_EVENT;
		return 0;
	case K_DATASETS: {
		const rm_dataset *ds = def ? rm_def_dataset(def, name) : NULL;
		if (!ds)
			return -ENOENT;
		d->kind = K_DS;
		d->ds = ds->name;
		return 0;
	}
	case K_DS: {
		d->ds = pd->ds;
		const rm_provision *p = rm_state_provision(&f->st, pd->ds);
		if (strcmp(name, "schema.json") == 0) {
			d->kind = K_DS_SCHEMA;
			return 0;
		}
		if (strcmp(name, "status") == 0) {
			d->kind = K_DS_STATUS;
			return 0;
		}
		if (strcmp(name, "stats.json") == 0) {
			if (!p || !rm_may_read_stats(&f->st, f->opt.me, pd->ds))
				return -ENOENT;
			d->kind = K_DS_STATS;
			return 0;
		}
		if (fs__is_append(f, pd->ds))
			return fs__drop_resolve(f, pd->ds, name, d);
		if (p && p->file && strcmp(p->file, name) == 0 &&
		    rm_may_read_data(&f->st, f->opt.me, pd->ds) &&
		    !fs__pdep_hides(f, pd->ds, p->sha256)) {
			d->kind = K_DS_DATA;
			d->prov = p;
			return 0;
		}
		return -ENOENT;
	}
	case K_COMPS: {
		const rm_computation *c = def ? rm_def_computation(def, name) : NULL;
		if (!c)
			return -ENOENT;
		d->kind = K_COMP;
		d->comp = c->name;
		return 0;
	}
	case K_DEV:
	case K_DEV_OUT:
		return fs__dev_resolve(f, pd, name, d);
	case K_COMP: {
		const rm_computation *c = rm_def_computation(def, pd->comp);
		d->comp = pd->comp;
		if (strcmp(name, comp_source_name(c)) == 0)
			d->kind = K_COMP_SOURCE;
		else if (strcmp(name, "run") == 0)
			d->kind = K_COMP_RUN;
		else if (strcmp(name, "status") == 0)
			d->kind = K_COMP_STATUS;
		else if (strcmp(name, "result.csv") == 0 && fs__last_done_run(f, pd->comp) &&
		         (!fs__result_files(f, pd->comp) || c->ncolumns ||
		          c->kind == RM_COMP_SYNTHETIC))
			d->kind = K_COMP_RESULT;
		else if (strcmp(name, "result") == 0 && fs__result_files(f, pd->comp) &&
		         fs__last_done_run(f, pd->comp))
			d->kind = K_COMP_RESDIR;
		else if (strcmp(name, "log") == 0 && fs__result_files(f, pd->comp) &&
		         fs__last_finished_run(f, pd->comp) &&
		         rm_check_read_logs(&f->st, f->opt.me, fs__last_finished_run(f, pd->comp)->id,
		                            NULL) == 0)
			d->kind = K_COMP_LOG;
		else
			return -ENOENT;
		return 0;
	}
	case K_COMP_RESDIR:
	case K_COMP_RESSUB: {
		/* the output files: analysts only */
		if (!rm_may_read_result(&f->st, f->opt.me, pd->comp))
			return -EACCES;
		const rcache *c = fs__rcache_get(f, pd->comp, false);
		int n = pd->kind == K_COMP_RESDIR
		            ? snprintf(d->rpath, sizeof d->rpath, "%s", name)
		            : snprintf(d->rpath, sizeof d->rpath, "%s/%s", pd->rpath, name);
		if (!c || n < 0 || (size_t)n >= sizeof d->rpath)
			return -ENOENT;
		d->comp = pd->comp;
		switch (rpath_kind(c, d->rpath)) {
		case 1:
			d->kind = K_COMP_RESFILE;
			return 0;
		case 2:
			d->kind = K_COMP_RESSUB;
			return 0;
		default:
			return -ENOENT;
		}
	}
	case K_REQUESTS:
	case K_REQ:
	case K_REQ_PREVIEW:
		return fs__req_resolve_child(f, dir, pd, name, d);
	default:
		return -ENOENT;
	}
}

/* Resolves an inode by walking up to the root (depth <= 3). f->mu held. */
int fs__resolve(fs *f, uint64_t ino, struct desc *d)
{
	uint64_t chain[32]; /* result/ holds directories of the output */
	int depth = 0;
	memset(d, 0, sizeof *d);
	for (uint64_t i = ino; i != FS_ROOT_INO; i = fs__node_at(f, i)->parent) {
		node *n = fs__node_at(f, i);
		if (!n || !n->name || depth == 32)
			return -ENOENT;
		chain[depth++] = i;
	}
	d->kind = K_ROOT;
	uint64_t dir = FS_ROOT_INO;
	while (depth-- > 0) {
		struct desc pd = *d;
		int rc = fs__resolve_child(f, dir, &pd, fs__node_at(f, chain[depth])->name, d);
		if (rc < 0)
			return rc;
		dir = chain[depth];
	}
	return 0;
}

bool fs__is_dir_kind(enum kind k)
{
	return k == K_ROOT || k == K_EVENTS || k == K_DATASETS || k == K_DS || k == K_COMPS ||
	       k == K_COMP || k == K_REQUESTS || k == K_REQ || k == K_REQ_PREVIEW || k == K_DEV ||
	       k == K_DEV_OUT || k == K_COMP_RESDIR || k == K_COMP_RESSUB;
}

/* May this identity read the node? f->mu held. */
bool fs__may_read(fs *f, const struct desc *d)
{
	switch (d->kind) {
	case K_README:
	case K_STATUS:
		return true;
	case K_ROOMJSON:
	case K_AUDIT:
	case K_EVENT:
	case K_DS_SCHEMA:
	case K_DS_STATUS:
	case K_COMP_SOURCE:
	case K_COMP_STATUS:
		return is_participant(f);
	case K_TESTOUT:
		return fs__is_creator(f) || is_participant(f);
	case K_DS_STATS:
		return rm_may_read_stats(&f->st, f->opt.me, d->ds);
	case K_COMP_RESULT:
	case K_COMP_RESFILE:
		return rm_may_read_result(&f->st, f->opt.me, d->comp);
	case K_COMP_LOG: {
		const rm_run *r = fs__last_finished_run(f, d->comp);
		return r && rm_check_read_logs(&f->st, f->opt.me, r->id, NULL) == 0;
	}
	case K_LFILE:
		return d->lf->temp;
	case K_DS_DATA:
		return rm_may_read_data(&f->st, f->opt.me, d->ds);
	case K_DEV_SCRIPT: /* this mount's own runs: the identity's */
	case K_DEV_STATUS:
	case K_DEV_FILE:
		return is_participant(f);
	default:
		return fs__req_may_read(f, d);
	}
}

/* What this identity may write: a stopped room takes no more actions, so
 * its files do not advertise writing. */
bool fs__may_write(fs *f, const struct desc *d)
{
	bool live = f->st.status != RM_STOPPED;
	switch (d->kind) {
	case K_ROOMJSON:
		return rm_may_edit(&f->st, f->opt.me);
	case K_CTL:
		return fs__is_creator(f) && live;
	case K_COMP_RUN:
		return rm_is_analyst(f->st.def, f->opt.me, d->comp) && live;
	case K_DEV_SCRIPT:
		return fs__dev_may_create(f);
	case K_DS_DATA:
	case K_LFILE:
		if (d->kind == K_LFILE && d->lf->temp)
			return d->ds == NULL || rm_is_owner(f->st.def, f->opt.me, d->ds);
		return d->ds == NULL || (rm_is_owner(f->st.def, f->opt.me, d->ds) && live);
	default:
		return fs__req_may_write(f, d);
	}
}

int fs__fill_attr(fs *f, uint64_t ino, const struct desc *d, fs_attr *a)
{
	memset(a, 0, sizeof *a);
	a->ino = ino;
	a->uid = f->opt.uid;
	a->gid = f->opt.gid;
	a->blksize = FS_BLKSIZE;
	a->mtime_ms = f->st.last_ts_ms ? f->st.last_ts_ms : f->mount_ms;
	if (fs__is_dir_kind(d->kind)) {
		a->mode = S_IFDIR | 0555;
		if (d->kind == K_DS && rm_is_owner(f->st.def, f->opt.me, d->ds) &&
		    f->st.status != RM_STOPPED)
			a->mode = S_IFDIR | 0755;
		if (d->kind == K_ROOT && fs__is_creator(f))
			a->mode = S_IFDIR | 0755; /* editors' swap files next to room.json */
		if (d->kind == K_DEV && fs__dev_may_create(f))
			a->mode = S_IFDIR | 0755; /* write NAME.sql|.py|.R here to run it */
		if ((d->kind == K_COMP_RESDIR || d->kind == K_COMP_RESSUB) &&
		    !rm_may_read_result(&f->st, f->opt.me, d->comp))
			a->mode = S_IFDIR; /* analysts only */
		if (d->kind == K_COMP_RESDIR || d->kind == K_COMP_RESSUB) {
			const rm_run *r = fs__last_done_run(f, d->comp);
			a->mtime_ms = r && r->finished_ts_ms ? r->finished_ts_ms : a->mtime_ms;
		}
		a->nlink = 2;
		return 0;
	}
	a->nlink = 1;
	mode_t m = 0;
	if (fs__may_read(f, d))
		m |= 0444;
	if (fs__may_write(f, d))
		m |= 0200;
	a->mode = S_IFREG | m;
	dcr_buf b;
	dcr_buf_init(&b);
	switch (d->kind) {
	case K_LFILE:
		a->size = d->lf->size;
		a->mtime_ms = d->lf->mtime_ms;
		a->mtime_ns = d->lf->mtime_ns;
		if (d->lf->mode >= 0)
			a->mode = S_IFREG | (m & (mode_t)d->lf->mode);
		break;
	case K_DS_DATA: {
		a->size = d->drop ? d->drop->bytes : d->prov->bytes;
		a->mtime_ms = d->drop ? d->drop->ts_ms : d->prov->ts_ms;
		const pmeta *pm = fs__pmeta_find(f, d->ds, d->drop ? d->drop->file : NULL,
		                                 d->drop ? d->drop->sha256 : d->prov->sha256, false);
		if (pm && pm->mtime_ns)
			a->mtime_ns = pm->mtime_ns;
		if (pm && pm->mode >= 0)
			a->mode = S_IFREG | (m & (mode_t)pm->mode);
		break;
	}
	case K_COMP_RESULT: {
		const rm_run *r = fs__last_done_run(f, d->comp);
		a->size = r ? r->result_bytes : 0;
		if (fs__result_files(f, d->comp)) { /* its dataset.csv, once fetched */
			const rcache *c = fs__rcache_get(f, d->comp, false);
			const dcr_archive_entry *e = c ? dcr_archive_find(&c->a, "dataset.csv") : NULL;
			a->size = e ? e->len : 0;
		}
		a->mtime_ms = r && r->finished_ts_ms ? r->finished_ts_ms : a->mtime_ms;
		break;
	}
	case K_COMP_RESFILE: {
		const rm_run *r = fs__last_done_run(f, d->comp);
		const rcache *c = fs__rcache_get(f, d->comp, false);
		const dcr_archive_entry *e = c ? dcr_archive_find(&c->a, d->rpath) : NULL;
		a->size = e ? e->len : 0;
		a->mtime_ms = r && r->finished_ts_ms ? r->finished_ts_ms : a->mtime_ms;
		break;
	}
	case K_COMP_LOG: {
		const rm_run *r = fs__last_finished_run(f, d->comp);
		const rcache *c = fs__rcache_get(f, d->comp, true);
		if (c)
			fs__log_text(c, &b);
		a->size = b.len;
		a->mtime_ms = r && r->finished_ts_ms ? r->finished_ts_ms : a->mtime_ms;
		break;
	}
	case K_CTL:
	case K_COMP_RUN:
	case K_REQ_APPROVE:
	case K_REQ_REJECT:
	case K_REQ_WITHDRAW:
	case K_REQ_NEW:
	case K_REQ_PREVIEW_RUN:
		break;
	case K_REQ_PREVIEW_RESULT: {
		const rm_run *r = fs__req_preview_of(f, d->req, d->comp);
		a->size = r ? r->result_bytes : 0;
		a->mtime_ms = r && r->finished_ts_ms ? r->finished_ts_ms : a->mtime_ms;
		break;
	case K_DEV_SCRIPT:
	case K_DEV_STATUS:
	case K_DEV_FILE:
		a->size = fs__dev_size(f, d);
		a->mtime_ms = fs__dev_mtime_ms(d) ? fs__dev_mtime_ms(d) : a->mtime_ms;
		break;
	}
	case K_EVENT:
		a->size = f->entries[d->seq].len;
		break;
	case K_AUDIT:
		a->size = f->audit.len;
		break;
	default:
		if (fs__gen_local(f, d, &b) == 0)
			a->size = b.len;
		else
			a->size = fs__node_at(f, ino)->last_size;
		break;
	}
	if (a->mtime_ns)
		a->mtime_ms = a->mtime_ns / 1000000;
	dcr_buf_release(&b);
	return 0;
}

/* ---- lookup, getattr, readdir --------------------------------------------------- */

static int lookup_once(fs *f, uint64_t parent, const char *name, fs_attr *out)
{
	struct desc pd, d;
	int rc;
	pthread_mutex_lock(&f->mu);
	rc = fs__resolve(f, parent, &pd);
	if (rc < 0)
		goto out;
	if (!fs__is_dir_kind(pd.kind)) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = fs__resolve_child(f, parent, &pd, name, &d);
	if (rc < 0)
		goto out;
	uint64_t ino = d.kind == K_LFILE ? d.lf->ino : fs__node_get(f, parent, name);
	rc = fs__fill_attr(f, ino, &d, out);
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int fs_lookup(fs *f, uint64_t parent, const char *name, fs_attr *out)
{
	fs__rcache_prefetch(f, parent, name);
	int rc = lookup_once(f, parent, name, out);
	if (rc == -ENOENT && !fs_is_temp_name(name)) {
		fs__maybe_refresh(f); /* a result or dataset that just appeared */
		rc = lookup_once(f, parent, name, out);
	}
	if (rc == 0)
		fs__backend_size(f, out);
	return rc;
}

int fs_getattr(fs *f, uint64_t ino, fs_attr *out)
{
	struct desc d;
	pthread_mutex_lock(&f->mu);
	int rc = fs__resolve(f, ino, &d);
	if (rc == 0)
		rc = fs__fill_attr(f, ino, &d, out);
	pthread_mutex_unlock(&f->mu);
	if (rc == 0)
		fs__backend_size(f, out);
	return rc;
}

static void dir_add(fs *f, fs_dir *dir, size_t *cap, uint64_t parent, const char *name)
{
	struct desc pd, d;
	if (fs__resolve(f, parent, &pd) < 0 || fs__resolve_child(f, parent, &pd, name, &d) < 0)
		return;
	if (dir->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		dir->ents = dcr_realloc(dir->ents, *cap * sizeof *dir->ents);
	}
	fs_dirent *e = &dir->ents[dir->n++];
	e->name = dcr_strdup(name);
	e->ino = d.kind == K_LFILE ? d.lf->ino : fs__node_get(f, parent, name);
	e->mode = fs__is_dir_kind(d.kind) ? S_IFDIR : S_IFREG;
}

struct dev_list_ctx {
	fs *f;
	fs_dir *dir;
	size_t *cap;
	uint64_t ino;
};

static void dev_list_add(void *ctx, const char *name)
{
	struct dev_list_ctx *c = ctx;
	dir_add(c->f, c->dir, c->cap, c->ino, name);
}

struct dir_ctx {
	fs *f;
	fs_dir *dir;
	size_t *cap;
	uint64_t ino;
};

static void dir_add_cb(void *ctx, const char *name)
{
	struct dir_ctx *c = ctx;
	dir_add(c->f, c->dir, c->cap, c->ino, name);
}

int fs_opendir(fs *f, uint64_t ino, fs_dir **out)
{
	struct desc d;
	size_t cap = 0;
	fs__maybe_refresh(f);
	fs_dir *dir = dcr_calloc(1, sizeof *dir);
	fs__rcache_prefetch(f, ino, NULL);
	pthread_mutex_lock(&f->mu);
	int rc = fs__resolve(f, ino, &d);
	if (rc < 0)
		goto out;
	if (!fs__is_dir_kind(d.kind)) {
		rc = -ENOTDIR;
		goto out;
	}
	const rm_def *def = f->st.def;
	switch (d.kind) {
	case K_ROOT: {
		static const char *const top[] = {"README",       "room.json", "status", "ctl",
		                                  "audit.log",    "test.out",  "events", "datasets",
		                                  "computations", "requests",  "dev"};
		for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
			dir_add(f, dir, &cap, ino, top[i]);
		break;
	}
	case K_EVENTS:
		if (!is_participant(f))
			break;
		for (size_t i = 0; i < f->nentries; i++) {
			char name[32];
			snprintf(name, sizeof name, "%012llu.event", (unsigned long long)i);
			dir_add(f, dir, &cap, ino, name);
		}
		break;
	case K_DATASETS:
		for (size_t i = 0; def && i < def->ndatasets; i++)
			dir_add(f, dir, &cap, ino, def->datasets[i].name);
		break;
	case K_DS: {
		dir_add(f, dir, &cap, ino, "schema.json");
		dir_add(f, dir, &cap, ino, "status");
		dir_add(f, dir, &cap, ino, "stats.json");
		const rm_provision *p = rm_state_provision(&f->st, d.ds);
		if (p && p->file && !lfile_find(f, ino, p->file))
			dir_add(f, dir, &cap, ino, p->file);
		/* an append dataset: its drops, in drop order */
		for (size_t k = 0; p && k < p->ndrops; k++)
			if (!lfile_find(f, ino, p->drops[k].file))
				dir_add(f, dir, &cap, ino, p->drops[k].file);
		break;
	}
	case K_COMPS:
		for (size_t i = 0; def && i < def->ncomputations; i++)
			dir_add(f, dir, &cap, ino, def->computations[i].name);
		break;
	case K_COMP: {
		const rm_computation *c = rm_def_computation(def, d.comp);
		dir_add(f, dir, &cap, ino, comp_source_name(c));
		dir_add(f, dir, &cap, ino, "run");
		dir_add(f, dir, &cap, ino, "status");
		dir_add(f, dir, &cap, ino, "result.csv");
		dir_add(f, dir, &cap, ino, "result");
		dir_add(f, dir, &cap, ino, "log");
		break;
	}
	case K_COMP_RESDIR:
	case K_COMP_RESSUB: {
		/* the entries one level below this directory */
		const rcache *c = fs__rcache_get(f, d.comp, false);
		size_t plen = d.kind == K_COMP_RESSUB ? strlen(d.rpath) + 1 : 0;
		const char *last = NULL;
		size_t last_n = 0;
		if (!rm_may_read_result(&f->st, f->opt.me, d.comp)) {
			rc = -EACCES;
			goto out;
		}
		for (size_t i = 0; c && i < c->a.n; i++) {
			const dcr_archive_entry *e = &c->a.e[i];
			if (plen && (e->name_len <= plen || memcmp(e->name, d.rpath, plen - 1) != 0 ||
			             e->name[plen - 1] != '/'))
				continue;
			const char *rest = e->name + plen;
			size_t rn = e->name_len - plen;
			const char *slash = memchr(rest, '/', rn);
			size_t cn = slash ? (size_t)(slash - rest) : rn;
			if (last && last_n == cn && memcmp(last, rest, cn) == 0)
				continue; /* sorted: a directory's files are adjacent */
			last = rest;
			last_n = cn;
			char *child = dcr_strndup(rest, cn);
			dir_add(f, dir, &cap, ino, child);
			free(child);
		}
		break;
	}
	case K_DEV:
	case K_DEV_OUT: {
		struct dev_list_ctx lc = {f, dir, &cap, ino};
		fs__dev_list(f, &d, dev_list_add, &lc);
		break;
	}
	case K_REQUESTS:
	case K_REQ:
	case K_REQ_PREVIEW: {
		struct dir_ctx dc = {f, dir, &cap, ino};
		fs__req_names(f, &d, dir_add_cb, &dc);
		break;
	}
	default:
		break;
	}
	for (lfile *l = f->lfiles; l; l = l->next)
		if (l->dir == ino)
			dir_add(f, dir, &cap, ino, l->name);
	rc = 0;
out:
	pthread_mutex_unlock(&f->mu);
	if (rc < 0) {
		fs_dir_free(dir);
		dir = NULL;
	}
	*out = dir;
	return rc;
}

void fs_dir_free(fs_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	free(d);
}

bool fs__reserved_ds_name(const char *name)
{
	for (size_t i = 0; i < RM_DS_OWN_FILES; i++)
		if (strcmp(name, rm_ds_own_files[i]) == 0)
			return true;
	return false;
}
