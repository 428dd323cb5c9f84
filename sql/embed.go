// Package migrations embeds the database migrations of zsm.
//
// The files are golang-migrate migrations: NNNNNN_name.up.sql and the matching
// .down.sql, applied in sequence by `authsvc migrate`. They run as the role
// `authsvc`, which is not a superuser: it owns the database, the schemas and
// every table, and creates the PostgREST roles it then holds ADMIN OPTION on.
// One grant needs a superuser and is done by whoever creates the database
// (the stack runner locally, the compose init service in production):
//
//	GRANT SET ON PARAMETER pgrst.jwt_secret TO authsvc;
//
// so that authsvc may publish its JWKS to PostgREST through the database.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
