package main

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"

	"github.com/gong-proxy/gong/examples"
	"github.com/gong-proxy/gong/runtime"
	"github.com/gong-proxy/gong/runtime/conf"
)

var checkCommand = command{
	usage: "check [<conf>] [OPTIONS]",
	help: `Check the validity of a kong.conf file. Every problem is printed.

<conf> (default /etc/kong/kong.conf) configuration file
`,
	run: func(cx *cmdContext) error {
		path := conf.DefaultSearchPaths[0]
		if len(cx.args) > 0 {
			path = cx.args[0]
		}
		cx.conf = path
		_, err := cx.loadConf()
		var problems conf.Errors
		if errors.As(err, &problems) {
			for _, p := range problems {
				fmt.Fprintf(cx.stderr, "Error: %v\n", p)
			}
			return exitError(1)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(cx.stdout, "configuration at %s is valid\n", path)
		return nil
	},
}

var configCommand = command{
	usage: "config COMMAND [OPTIONS]",
	help: `Use declarative configuration files with gong.

The available commands are:
  init [<file>]   Write an example declarative config (default ./kong.yml).
  parse <file>    Check a declarative config file (YAML, JSON or TOML)
                  against the node's configuration, without loading it.
  db_import <file>
                  Import a declarative config file into the database
                  (database = postgres).
  db_export [<file>]
                  Export the database into a declarative config file
                  (default ./kong.yml).

Options:
 -c,--conf    (optional string) configuration file
 -p,--prefix  (optional string) override prefix directory
`,
	run: func(cx *cmdContext) error {
		if len(cx.args) == 0 {
			return errors.New("expected a command; see `gong config --help`")
		}
		switch cx.args[0] {
		case "init":
			return configInit(cx)
		case "parse":
			return configParse(cx)
		case "db_import", "db-import":
			return configDBImport(cx)
		case "db_export", "db-export":
			return configDBExport(cx)
		}
		return fmt.Errorf("No such command for config: %s", cx.args[0])
	},
}

func configInit(cx *cmdContext) error {
	file := "kong.yml"
	if len(cx.args) > 1 {
		file = cx.args[1]
	}
	if _, err := os.Stat(file); err == nil {
		return fmt.Errorf("%s already exists in the current directory.\nWill not overwrite it.", file)
	}
	if err := os.WriteFile(file, examples.KongYML, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(cx.stdout, "wrote %s\n", file)
	return nil
}

func configParse(cx *cmdContext) error {
	if len(cx.args) < 2 {
		return errors.New("expected a declarative configuration file; see `gong config --help`")
	}
	c, err := cx.loadConf()
	if err != nil {
		return err
	}
	if _, err := runtime.ParseDeclarativeFile(c, cx.args[1]); err != nil {
		return fmt.Errorf("Failed parsing:\n%v", err)
	}
	fmt.Fprintln(cx.stdout, "parse successful")
	return nil
}

// checkDeclarative loads the declarative configuration kong.conf names.
func checkDeclarative(c *conf.Config) error {
	if _, err := runtime.LoadDeclarative(c); err != nil {
		return fmt.Errorf("Failed parsing:\n%v", err)
	}
	return nil
}

var versionCommand = command{
	usage: "version [OPTIONS]",
	help: `Print gong's version. With --all, also the versions of what it embeds.

Options:
 -a,--all  get version of all components
`,
	run: func(cx *cmdContext) error {
		if !cx.all {
			fmt.Fprintf(cx.stdout, "gong %s\n", version)
			return nil
		}
		fmt.Fprintf(cx.stdout, "gong: %s\nKong compatibility: %s\nGo: %s\nLua: %s\n",
			version, runtime.KongCompatibility, goruntime.Version(), runtime.LuaVersion)
		return nil
	},
}
