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
    """A field of a config dataclass with its help text (and choices; cli_type: the type the
    command line reads, when it differs from the default's, e.g. str for a K or a list of K):
    each script builds its command line from its config's fields."""
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def parser_from_config(config_class, doc: str, epilog: str | None = None, notes: dict | None = None,
                       probe: bool = False) -> "OneLineParser":
    """The command line of a config dataclass whose fields come from config_field (every script's):
    one --flag per field, its help with the default (and notes[name] after the help, if given),
    choices from the field's metadata. A bool is a switch; a tuple of numbers is read as
    comma-separated text (parsed after, e.g. by parse_int_list), as is a field whose cli_type is str;
    an empty tuple takes one or more
    FILEs. The description is doc's first line, the epilog `epilog` or doc's last paragraph (the
    examples). probe=True gives no option a default, so that parsing argv yields exactly the
    options given (what a script needs to let explicit flags win over a recipe's defaults)."""
    parser = OneLineParser(description=doc.split("\n")[0], formatter_class=HelpFormatter,
                           epilog=epilog or "examples:\n" + doc.split("\n\n")[-1].rstrip('"\n'),
                           argument_default=argparse.SUPPRESS if probe else None)
    for f in dataclasses.fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        shown = f.metadata["help"] + (notes or {}).get(f.name, "")
        default = (",".join(map(str, f.default)) if isinstance(f.default, tuple) else
                   str(f.default) if f.metadata.get("cli_type") is str else f.default)    # as the command line reads it
        given = {} if probe else {"default": default}
        if isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true", help=shown, **given)
        elif f.default == ():
            parser.add_argument(flag, nargs="+", metavar="FILE", help=shown, **({} if probe else {"default": ()}))
        else:
            parser.add_argument(flag, type=f.metadata.get("cli_type", type(default)), choices=f.metadata.get("choices"),
                                help=f"{shown} (default: {default!r})", **given)
    return parser


# The config keys of results written before the scripts shared one vocabulary: old name -> name now
# (balls n_*, the test set n_eval, the training length steps). Stored configs are read through
# stored_config, so that every committed result and model still loads.
RENAMED = {"k_balls": "n_balls", "train_k_balls": "train_n_balls", "n_test": "n_eval", "n_seq": "n_eval",
           "iterations": "steps", "train_iters": "train_steps"}


def current_names(stored: dict) -> dict:
    """A stored config with its keys in today's names (RENAMED), values unchanged."""
    return {RENAMED.get(key, key) if RENAMED.get(key, key) not in stored else key: value
            for key, value in stored.items()}


def stored_config(config_class, stored: dict, known_only: bool = False):
    """config_class from a config stored in a result or model file: keys renamed (RENAMED), a list
    or comma-separated text read back as the tuple a tuple field holds; known_only drops the keys
    config_class has no field for (else they raise TypeError)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values = {}
    for key, value in current_names(stored).items():
        if known_only and key not in fields:
            continue
        if key in fields and isinstance(fields[key].default, tuple):
            value = tuple(value) if isinstance(value, list) else (
                parse_int_list(value, "--" + key.replace("_", "-")) if isinstance(value, str) else value)
        values[key] = value
    return config_class(**values)


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
        if message.startswith("unrecognized arguments:"):       # an old flag: say its name now (RENAMED)
            flags = {"--" + old.replace("_", "-"): "--" + new.replace("_", "-") for old, new in RENAMED.items()}
            renamed = [f"{word} is now {flags[word]}" for word in message.split()[2:] if word in flags
                       and flags[word] in self._option_string_actions]
            message += f" ({'; '.join(renamed)})" if renamed else ""
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
