package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/declarative"
)

// configDBImport is "config db_import <file>": the file, validated as a
// kong.yml, is written into the database in one transaction.
func configDBImport(cx *cmdContext) error {
	c, err := cx.loadConf()
	if err != nil {
		return err
	}
	if c.Database.Strategy == "off" {
		return errors.New("'gong config db_import' only works with a database.\nWhen using database=off, reload your declarative configuration\nusing the /config endpoint.")
	}
	if len(cx.args) < 2 {
		return errors.New("expected a declarative configuration file; see `gong config --help`")
	}
	_, s, err := cx.openStore("config db_import")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Check(context.Background(), c.EnabledPlugins(runtime.BundledPlugins)); err != nil {
		return err
	}
	return runtime.WithDeclarativeOptions(c, func(opts declarative.Options) error {
		cfg, err := declarative.LoadFile(cx.args[1], opts)
		if err != nil {
			return fmt.Errorf("Failed parsing:\n%v", err)
		}
		fmt.Fprintln(cx.stdout, "parse successful, beginning import")
		if err := s.Import(context.Background(), opts, cfg); err != nil {
			return fmt.Errorf("Failed importing:\n%v", err)
		}
		fmt.Fprintln(cx.stdout, "import successful")
		return nil
	})
}

// configDBExport is "config db_export [<file>]": every entity gong
// serves, as a kong.yml.
func configDBExport(cx *cmdContext) error {
	c, err := cx.loadConf()
	if err != nil {
		return err
	}
	if c.Database.Strategy == "off" {
		return errors.New("'gong config db_export' only works with a database.")
	}
	file := "kong.yml"
	if len(cx.args) > 1 {
		file = cx.args[1]
	}
	if _, err := os.Stat(file); err == nil {
		return fmt.Errorf("%s already exists. Will not overwrite it.", file)
	}
	_, s, err := cx.openStore("config db_export")
	if err != nil {
		return err
	}
	defer s.Close()
	data, err := s.ExportYAML(context.Background())
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}
