"""`tfft`: the click group, error handling and exit codes.

Exit codes (contract): 0 success; 2 the user's mistake; 1 a fault inside tfft; 130 Ctrl-C after
saving what can be resumed. Commands import TensorFlow only inside their bodies, so `tfft --help`
and `tfft config show` answer at once.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from tfft.cli.runtime import command_runtime
from tfft.errors import TrainingInterrupted, UserError


class _Group(click.Group):
    """Maps tfft's exceptions to the contract's exit codes and one-line messages."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug") or os.environ.get("TFFT_DEBUG") == "1"
        try:
            # TensorFlow's start-up chatter hidden (unless --debug), each warning once.
            with command_runtime(debug=debug, verbose=bool(ctx.params.get("verbose"))):
                return super().invoke(ctx)
        except UserError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except TrainingInterrupted as exc:
            click.echo(str(exc), err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:  # a fault inside tfft
            if debug:
                traceback.print_exc()
            else:
                click.echo(f"internal error: {type(exc).__name__}: {exc}\n"
                           "(run again with --debug for the traceback, and report it)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show Python tracebacks for every error, and TensorFlow's own log lines.")
@click.option("--verbose", is_flag=True, help="Show the details of the work (also in a run's run.log) and "
                                              "TensorFlow's warnings.")
@click.version_option(package_name="tfft")
def cli(debug: bool, verbose: bool) -> None:
    """tfft: fine-tune pretrained keras.applications image models from a YAML file."""
    if debug:
        os.environ["TFFT_DEBUG"] = "1"


def _register() -> None:
    # Each command family lives in its own module (one line each: keep every name when merging).
    from tfft.cli import (commands_augment, commands_core, commands_cv, commands_data, commands_ensemble, commands_evaluate,
                          commands_interpret, commands_issues,
                          commands_prune,
                          commands_schedule, commands_tune)

    for module in (commands_core, commands_data, commands_augment, commands_evaluate, commands_schedule,
                   commands_ensemble, commands_tune, commands_cv, commands_issues, commands_prune, commands_interpret):
        module.register(cli)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tfft")


if __name__ == "__main__":
    main()
