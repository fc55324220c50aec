/*
 * internal.h: declarations shared between the files of db/ (and its tests), not for other folders.
 */
#ifndef TIERGATE_DB_INTERNAL_H
#define TIERGATE_DB_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>

/* Opens (creating) PATH with the connection settings the log needs (WAL, synchronous=NORMAL,
 * busy timeout) and migrates it to the latest schema. Returns 0, or a negative errno with a
 * message in err (*out NULL). */
int db_schema_open(const char *path, sqlite3 **out, char *err, size_t errlen);

/* Runs the forward-only migrations from the database's PRAGMA user_version up to TARGET, each in
 * its own IMMEDIATE transaction that also bumps user_version (so a crash leaves a whole version).
 * Returns 0; -EINVAL if the database is newer than TARGET or TARGET is unknown; -EIO on an SQLite
 * error (message in err). Idempotent. */
int db_schema_migrate(sqlite3 *db, int target, char *err, size_t errlen);

/* The insert statement of one request row, columns in db_row order (writer.c binds it). */
extern const char db_insert_sql[];

#endif
