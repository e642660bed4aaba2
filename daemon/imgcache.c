/* imgcache.c: decrypted prepared tables kept in memory between runs.
 *
 * A run reads every input as an SQLite image (a prepared dataset table or
 * a cached upstream result), stored encrypted in the blob store. Reading
 * and decrypting them cost a fifth of a 1M x 1M overlap run (184 MB,
 * ~0.13 s), paid again by every run. Blob ids name immutable contents, so
 * an image can be shared by any number of runs at once (SQLite opens it
 * read-only, without a copy: cmp_sql_run) and never goes stale. Entries
 * are reference counted; unreferenced ones are evicted least recently used
 * first once the cache holds more than its budget (dcrd --image-cache-mb,
 * default DMN_IMAGE_CACHE_BYTES; 0 keeps nothing). When a provision is
 * withdrawn or replaced, every entry goes (dmn__image_forget_all, from
 * dmn__submit: tables and the cached results derived from them alike), so
 * withdrawn data does not linger in memory; freed entries are wiped. An
 * image larger than the whole budget is read for its run only, outside
 * the cache, and freed after it. A table just built by jobs.c is put in
 * (dmn__image_adopt: in the buffer cmp_prepare_stream made it in) without
 * a copy, so the first run finds it here, even before its blob is stored:
 * the build holds it until then, so it is not evicted meanwhile. */
#include <string.h>

#include "dmn_int.h"

struct dmn_image {
	struct dmn_image *next;
	char id[DMN_BLOB_HEX_BYTES];
	dcr_buf bytes;
	bool cmp_owned; /* bytes.data is cmp_prepare_image's: cmp_image_free */
	unsigned refs;
	bool forgotten; /* to be dropped: free when the last run lets go */
	bool private_;  /* larger than the budget: not in the list, one run's own */
	uint64_t used;  /* d->imgc.tick at the last get */
};

/* Decrypted rows: wiped before the memory goes back to the allocator. */
static void entry_free(dmn_image *e)
{
	if (e->cmp_owned) {
		cmp_image_free(e->bytes.data, e->bytes.len);
		free(e);
		return;
	}
	if (e->bytes.data)
		dcr_wipe(e->bytes.data, e->bytes.len);
	dcr_buf_release(&e->bytes);
	free(e);
}

/* Drops unreferenced entries, least recently used first, until the cache
 * fits its budget. */
static void evict_locked(dmn *d)
{
	DMN_ASSERT_HELD(&d->imgc.mu);
	while (d->imgc.bytes > d->imgc.budget) {
		dmn_image **victim = NULL;
		for (dmn_image **pp = &d->imgc.list; *pp; pp = &(*pp)->next)
			if ((*pp)->refs == 0 && (!victim || (*pp)->used < (*victim)->used))
				victim = pp;
		if (!victim)
			return; /* everything left is in use */
		dmn_image *e = *victim;
		*victim = e->next;
		d->imgc.bytes -= e->bytes.len;
		entry_free(e);
	}
}

const void *dmn__image_data(const dmn_image *im, size_t *n)
{
	*n = im->bytes.len;
	return im->bytes.data;
}

int dmn__image_get(dmn *d, const char *id, dmn_image **out, bool *hit, dcr_err *err)
{
	dmn_image *e, *mine;
	int rc;

	*out = NULL;
	*hit = false;
	dmn__mutex_lock(&d->imgc.mu);
	for (e = d->imgc.list; e; e = e->next)
		if (!e->forgotten && strcmp(e->id, id) == 0) {
			e->refs++;
			e->used = ++d->imgc.tick;
			dmn__mutex_unlock(&d->imgc.mu);
			*hit = true;
			*out = e;
			return 0;
		}
	dmn__mutex_unlock(&d->imgc.mu);
	/* Read and decrypt outside the lock: other runs go on meanwhile. */
	mine = dcr_calloc(1, sizeof *mine);
	snprintf(mine->id, sizeof mine->id, "%s", id);
	dcr_buf_init(&mine->bytes);
	rc = dmn__blob_read_all(d->blobs, id, DMN_IMAGE_BYTES_MAX, &mine->bytes, err);
	if (rc < 0) {
		entry_free(mine);
		return rc;
	}
	if (mine->bytes.len > d->imgc.budget) {
		/* Too large to keep (or the cache is off): this run's own copy,
		 * so it does not push everything else out. */
		mine->private_ = true;
		mine->refs = 1;
		*out = mine;
		return 0;
	}
	dmn__mutex_lock(&d->imgc.mu);
	for (e = d->imgc.list; e; e = e->next)
		if (!e->forgotten && strcmp(e->id, id) == 0)
			break;
	if (e) {
		/* Another run loaded it meanwhile: share that one. */
		entry_free(mine);
	} else {
		e = mine;
		e->next = d->imgc.list;
		d->imgc.list = e;
		d->imgc.bytes += e->bytes.len;
	}
	e->refs++;
	e->used = ++d->imgc.tick;
	evict_locked(d);
	dmn__mutex_unlock(&d->imgc.mu);
	*out = e;
	return 0;
}

dmn_image *dmn__image_adopt(dmn *d, const char *id, void **image, size_t n)
{
	dmn_image *e, *held = NULL;

	if (!*image || n > d->imgc.budget)
		return NULL;
	dmn__mutex_lock(&d->imgc.mu);
	for (e = d->imgc.list; e; e = e->next)
		if (!e->forgotten && strcmp(e->id, id) == 0)
			break;
	if (!e) {
		e = dcr_calloc(1, sizeof *e);
		snprintf(e->id, sizeof e->id, "%s", id);
		dcr_buf_init(&e->bytes);
		e->bytes.data = *image;
		e->bytes.len = e->bytes.cap = n;
		e->cmp_owned = true;
		*image = NULL;
		e->next = d->imgc.list;
		d->imgc.list = e;
		d->imgc.bytes += n;
		e->used = ++d->imgc.tick;
		e->refs = 1;
		held = e;
		evict_locked(d);
	}
	dmn__mutex_unlock(&d->imgc.mu);
	return held;
}

static void unlink_locked(dmn *d, dmn_image *e)
{
	DMN_ASSERT_HELD(&d->imgc.mu);
	for (dmn_image **pp = &d->imgc.list; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			d->imgc.bytes -= e->bytes.len;
			entry_free(e);
			return;
		}
}

void dmn__image_put(dmn *d, dmn_image *im)
{
	if (!im)
		return;
	if (im->private_) {
		entry_free(im);
		return;
	}
	dmn__mutex_lock(&d->imgc.mu);
	DCR_ASSERT(im->refs > 0);
	im->refs--;
	if (im->refs == 0 && im->forgotten)
		unlink_locked(d, im);
	else
		evict_locked(d);
	dmn__mutex_unlock(&d->imgc.mu);
}

void dmn__image_discard(dmn *d, dmn_image *im)
{
	if (!im)
		return;
	if (!im->private_) {
		dmn__mutex_lock(&d->imgc.mu);
		im->forgotten = true;
		dmn__mutex_unlock(&d->imgc.mu);
	}
	dmn__image_put(d, im);
}

void dmn__image_forget_all(dmn *d, unsigned *freed, unsigned *held, uint64_t *bytes)
{
	*freed = *held = 0;
	*bytes = 0;
	dmn__mutex_lock(&d->imgc.mu);
	for (dmn_image **pp = &d->imgc.list; *pp;) {
		dmn_image *e = *pp;
		if (e->forgotten) {
			pp = &e->next;
			continue;
		}
		e->forgotten = true;
		if (e->refs == 0) {
			*pp = e->next;
			d->imgc.bytes -= e->bytes.len;
			*bytes += e->bytes.len;
			(*freed)++;
			entry_free(e);
		} else {
			(*held)++;
			pp = &e->next;
		}
	}
	dmn__mutex_unlock(&d->imgc.mu);
}

void dmn__image_cache_init(dmn *d, uint64_t budget)
{
	dmn__mutex_init(&d->imgc.mu);
	d->imgc.budget = budget;
}

void dmn__image_cache_free(dmn *d)
{
	while (d->imgc.list) {
		dmn_image *e = d->imgc.list;
		d->imgc.list = e->next;
		DCR_ASSERT(e->refs == 0); /* no run left */
		entry_free(e);
	}
	d->imgc.bytes = 0;
	dmn__mutex_destroy(&d->imgc.mu);
}
