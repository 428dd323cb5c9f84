// Package migrate applies zsm's SQL migrations (sql/*.sql, embedded) with
// golang-migrate over pgx v5.
package migrate

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"

	migrations "zsm.dev/zsm/sql"
)

// Migrator runs migrations against one database.
type Migrator struct {
	m *migrate.Migrate
}

// Open prepares a Migrator for the database at a postgres:// URL.
func Open(databaseURL string) (*Migrator, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("migrate: database URL must be a postgres:// URL")
	}
	u.Scheme = "pgx5"
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, u.String())
	if err != nil {
		// The driver's message may contain the URL, password included.
		return nil, errors.New("migrate: cannot connect to the database")
	}
	return &Migrator{m: m}, nil
}

// Close releases the connection.
func (m *Migrator) Close() error {
	se, de := m.m.Close()
	return errors.Join(se, de)
}

// Up applies every pending migration.
func (m *Migrator) Up() error {
	if err := m.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Down reverts the newest steps migrations; steps < 0 reverts all.
func (m *Migrator) Down(steps int) error {
	var err error
	if steps < 0 {
		err = m.m.Down()
	} else {
		err = m.m.Steps(-steps)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// Version reports the applied version (0 when none) and whether a failed
// migration left the database dirty.
func (m *Migrator) Version() (uint, bool, error) {
	v, dirty, err := m.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	return v, dirty, err
}
