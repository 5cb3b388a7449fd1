/*
 * shim.c: flat C functions over libdb's method tables (DB->open, DB->get,
 * ...), which Rust cannot call without the struct layouts of <db.h>. Each
 * function does one libdb call and returns libdb's status: 0, DB_NOTFOUND,
 * DB_KEYEXIST, or an errno/libdb error for pm_strerror. Values are copied
 * into buffers libdb allocates with malloc (DB_DBT_MALLOC); the caller frees
 * them with pm_free. No environment, no threads: one handle per table, used
 * under the caller's lock, as Postfix's dict_db uses it.
 */
#include <db.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libdb's own message for the last failure on this thread (instead of
 * libdb's default, a line on stderr). */
static __thread char last_message[256];

static void keep_message(const DB_ENV *env, const char *prefix, const char *msg)
{
    (void) env;
    (void) prefix;
    snprintf(last_message, sizeof(last_message), "%s", msg);
}

const char *pm_last_message(void) { return last_message; }

int pm_notfound(void) { return DB_NOTFOUND; }
int pm_keyexist(void) { return DB_KEYEXIST; }
const char *pm_strerror(int err) { return db_strerror(err); }
void pm_free(void *p) { free(p); }

/* Open (and with create, create) PATH as a btree or hash database. */
int pm_open(const char *path, int btree, int create, int mode, DB **out)
{
    DB *db;
    int err = db_create(&db, 0, 0);
    if (err != 0)
        return err;
    last_message[0] = 0;
    db->set_errcall(db, keep_message);
    /* As Postfix's dict_db: its read buffer as cache, 4096 hash elements. */
    if ((err = db->set_cachesize(db, 0, 128 * 1024, 0)) != 0
        || (!btree && (err = db->set_h_nelem(db, 4096)) != 0)) {
        db->close(db, 0);
        return err;
    }
    err = db->open(db, 0, path, 0, btree ? DB_BTREE : DB_HASH,
                   create ? DB_CREATE : 0, mode);
    if (err != 0) {
        db->close(db, 0);
        return err;
    }
    *out = db;
    return 0;
}

int pm_close(DB *db) { return db->close(db, 0); }

/* Close without writing the handle's changed pages (they are abandoned). */
int pm_close_nosync(DB *db) { return db->close(db, DB_NOSYNC); }

int pm_sync(DB *db)
{
    last_message[0] = 0;
    return db->sync(db, 0);
}

static void dbt_in(DBT *d, const void *p, size_t n)
{
    memset(d, 0, sizeof(*d));
    d->data = (void *) p;
    d->size = (u_int32_t) n;
}

int pm_get(DB *db, const void *k, size_t kl, void **v, size_t *vl)
{
    last_message[0] = 0;
    DBT key, val;
    int err;
    dbt_in(&key, k, kl);
    memset(&val, 0, sizeof(val));
    val.flags = DB_DBT_MALLOC;
    err = db->get(db, 0, &key, &val, 0);
    if (err == 0) {
        *v = val.data;
        *vl = val.size;
    }
    return err;
}

int pm_put(DB *db, const void *k, size_t kl, const void *v, size_t vl, int nooverwrite)
{
    last_message[0] = 0;
    DBT key, val;
    dbt_in(&key, k, kl);
    dbt_in(&val, v, vl);
    return db->put(db, 0, &key, &val, nooverwrite ? DB_NOOVERWRITE : 0);
}

int pm_del(DB *db, const void *k, size_t kl)
{
    last_message[0] = 0;
    DBT key;
    dbt_in(&key, k, kl);
    return db->del(db, 0, &key, 0);
}

int pm_cursor(DB *db, DBC **out) { return db->cursor(db, 0, out, 0); }

int pm_cursor_close(DBC *c) { return c->close(c); }

/* The first (first != 0) or next entry under cursor C. */
int pm_cursor_get(DBC *c, int first, void **k, size_t *kl, void **v, size_t *vl)
{
    last_message[0] = 0;
    DBT key, val;
    int err;
    memset(&key, 0, sizeof(key));
    memset(&val, 0, sizeof(val));
    key.flags = DB_DBT_MALLOC;
    val.flags = DB_DBT_MALLOC;
    err = c->get(c, &key, &val, first ? DB_FIRST : DB_NEXT);
    if (err == 0) {
        *k = key.data;
        *kl = key.size;
        *v = val.data;
        *vl = val.size;
    }
    return err;
}

/* The descriptor libdb reads and writes the file through (for flock). */
int pm_fd(DB *db, int *fd) { return db->fd(db, fd); }
