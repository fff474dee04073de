"""``flowdeck completion bash|zsh``: a shell completion script made from the parser itself.

argparse offers no completion of its own, so this walks the parser tree (commands, options, option
choices) and writes them into one bash function; zsh loads it through ``bashcompinit``. Anything
else (a file name, an id) falls back to the shell's file completion.

    eval "$(flowdeck completion bash)"     # or add it to ~/.bashrc
"""

from __future__ import annotations

import argparse
from typing import Any

_SCRIPT = """\
# flowdeck completion ({shell}); made by `flowdeck completion {shell}`
_flowdeck_words() {{
  case "$1" in
{words}
  esac
}}
_flowdeck() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" path="" w i
  for ((i=1; i<COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    case " $(_flowdeck_words "$path") " in *" $w "*) [[ $w != -* ]] && path="${{path:+$path }}$w";; esac
  done
  local choices; choices="$(_flowdeck_words "$path|$prev")"
  if [[ -n $choices ]]; then COMPREPLY=($(compgen -W "$choices" -- "$cur")); return; fi
  COMPREPLY=($(compgen -W "$(_flowdeck_words "$path")" -- "$cur"))
}}
complete -o default -F _flowdeck flowdeck
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse has no public way to walk its tree
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def words(parser: argparse.ArgumentParser, path: str = "") -> dict[str, list[str]]:
    """Completion words by command path (``"jobs list"``), and choices by ``"path|--option"``."""
    children = _subcommands(parser)
    options = [o for a in parser._actions for o in a.option_strings if a.help != argparse.SUPPRESS]
    chosen = [a for a in parser._actions if a.choices and not isinstance(a, argparse._SubParsersAction)]
    positional = [str(c) for a in chosen if not a.option_strings for c in a.choices or ()]
    found = {path: [*children, *positional, *options]}
    for action in chosen:
        if action.choices and action.option_strings:
            for option in action.option_strings:
                found[f"{path}|{option}"] = [str(c) for c in action.choices]
    for name, child in children.items():
        found.update(words(child, f"{path} {name}".strip()))
    return found


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell``."""
    cases = "\n".join(f'    "{key}") echo "{" ".join(values)}" ;;' for key, values in words(parser).items())
    text = _SCRIPT.format(shell=shell, words=cases)
    return "autoload -U +X bashcompinit && bashcompinit\n" + text if shell == "zsh" else text


def completion(args: argparse.Namespace) -> int:
    print(script(args.root_parser, args.shell), end="")
    return 0


def register(sub: Any) -> None:
    """Add ``flowdeck completion``."""
    p = sub.add_parser("completion", help="print a shell completion script (eval it, or save it)")
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=completion)
