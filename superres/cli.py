"""`superres`: the local stand-in, the demo, replay, backfill and the layer build."""

from __future__ import annotations

import logging

import click

from . import __version__


class _Superres(click.Group):
    """The CLI's one error boundary: a failure escaping any command becomes one or two lines on stderr and exit
    status 1 (superres.errors says what each known failure means); `superres --debug` shows the traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            from .errors import describe

            raise click.ClickException(describe(exc)) from exc


@click.group(cls=_Superres, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="superres")
@click.option("-v", "--verbose", is_flag=True, help="Log the stand-in's requests to stderr.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure instead of a one-line message.")
def main(verbose: bool, debug: bool) -> None:
    """cos-superres: super-resolve every image uploaded to a COS bucket (Cloud Infinite AISuperResolution),
    and develop and test that pipeline offline against an embedded COS + CI stand-in."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# Each command lives in the module named for it; they register here.
from .commands import demo_cmd, local_cmd  # noqa: E402

main.add_command(local_cmd.local)
main.add_command(demo_cmd.demo)
from .commands import cam_policy_cmd, layer_cmd  # noqa: E402

main.add_command(layer_cmd.layer)
main.add_command(cam_policy_cmd.cam_policy_cmd)
from .commands import replay_cmd  # noqa: E402

main.add_command(replay_cmd.replay)
from .commands import backfill_cmd  # noqa: E402

main.add_command(backfill_cmd.backfill)
from .commands import check_cmd, deploy_cmd, deploy_config_cmd  # noqa: E402

main.add_command(check_cmd.check)
main.add_command(deploy_cmd.deploy)
main.add_command(deploy_cmd.remove)
main.add_command(deploy_config_cmd.deploy_config)
from .commands import reconcile_cmd  # noqa: E402

main.add_command(reconcile_cmd.reconcile)
