"""What every command line of the project shares: the one-line error, and the parsers of lists.

Bad input raises ConfigError; each script's main() prints it as one line `error: ...` and exits
with code 2, before any work and without writing anything. OneLineParser makes argparse's own
errors (an unknown flag, a value of the wrong type) the same one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys


def config_field(default, help: str, **kw):
    """A field of a config dataclass with its help text (and argparse keywords such as choices):
    each script builds its command line from its config's fields."""
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def parser_from_config(config_class, doc: str) -> "OneLineParser":
    """The command line of a config dataclass whose fields come from config_field: one --flag per
    field (a bool is a switch), its help with the default, choices from the field's metadata;
    the description is doc's first line and the epilog its last paragraph (the examples)."""
    parser = OneLineParser(description=doc.split("\n")[0], formatter_class=HelpFormatter,
                           epilog="examples:\n" + doc.split("\n\n")[-1].rstrip('"\n'))
    for f in dataclasses.fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, choices=f.metadata.get("choices"),
                                help=f"{f.metadata['help']} (default: {f.default!r})")
    return parser


class ConfigError(ValueError):
    """A configuration or input that cannot be run; main() prints it on one line, exit code 2."""


def parse_int_list(text: str, option: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated integers such as 4,3,5,6 (got {text!r})")
    if not values:
        raise ConfigError(f"{option} must list at least one integer (got {text!r})")
    return values


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples of the epilog as written."""


MAX_SEEDS = 10_000


def parse_seeds(text: str) -> list:
    """'0-9' or '0,3,5-7' -> sorted list of distinct non-negative seeds (ConfigError otherwise)."""
    ranges = []
    for part in text.split(","):
        bounds = part.strip().split("-")
        if (len(bounds) > 2 or not all(b.strip().isascii() and b.strip().isdigit() for b in bounds)
                or int(bounds[0]) > int(bounds[-1])):
            raise ConfigError(f"--seeds must be non-negative integers and ranges such as 0-9 or 0,3,5-7 "
                              f"(got {text!r})")
        ranges.append((int(bounds[0]), int(bounds[-1]) + 1))
    count = sum(hi - lo for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise ConfigError(f"--seeds lists {count} seeds; a sweep takes at most {MAX_SEEDS} (got {text!r})")
    seeds = [s for lo, hi in ranges for s in range(lo, hi)]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds lists a seed twice (got {text!r})")
    return sorted(seeds)
