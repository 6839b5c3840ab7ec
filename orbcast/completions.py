"""Shell completions for bash, zsh and fish, generated from the CLI itself.

The command tree (commands, subcommands, options, their choices and which take file names) is read
from the typer app, so the scripts in ``completions/`` follow the commands. Regenerate with
``make completions`` (``python -m orbcast.completions completions``); ``--check`` fails when they are stale.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import typer.main

HEADER = "Generated from the CLI by `make completions` (python -m orbcast.completions): do not edit."
FILES = {"bash": "orbcast.bash", "zsh": "_orbcast", "fish": "orbcast.fish"}
FILE_METAVARS = re.compile(r"^(PATH|FILE|DIR)S?$")


@dataclass
class Param:
    names: list[str]  # option names (-o, --output) or the argument's name
    help: str
    takes_value: bool = True
    choices: list[str] = field(default_factory=list)
    files: bool = False
    repeat: bool = False  # a repeatable option, or an argument taking any number of values
    metavar: str = "VALUE"


@dataclass
class Node:
    path: tuple[str, ...]
    help: str
    options: list[Param] = field(default_factory=list)
    arguments: list[Param] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def walk(self) -> list[Node]:
        return [self, *(n for child in self.children for n in child.walk())]

    @property
    def key(self) -> str:
        return " ".join(self.path)


def _summary(text: str | None) -> str:
    """The first sentence of a help text, one line, without ``[env ...]`` notes."""
    text = (text or "").replace("\b", "").strip().split("\n\n")[0]
    text = re.sub(r"\s*\[[^\]]*\]", "", " ".join(text.split()))
    text = re.split(r"(?<=[\w)][.])\s+(?=[A-Z])", text)[0].rstrip(".")  # the first sentence
    return text if len(text) <= 80 else text[:77].rstrip() + "..."


def _param(param: Any, ctx: Any) -> Param | None:
    if getattr(param, "hidden", False):
        return None
    desc = getattr(param, "type_descriptor", None)
    is_option = param.param_type_name == "option"
    flag = is_option and (getattr(param, "is_flag", False) or getattr(param, "count", False))
    choices: list[str] = []
    files = False
    if not flag:
        for item in param.shell_complete(ctx, ""):
            if getattr(item, "type", "plain") in ("file", "dir"):
                files = True
            elif item.value not in choices:
                choices.append(str(item.value))
        files = files or bool(desc is not None and (desc.is_path or desc.is_file))
        files = files or bool(FILE_METAVARS.match((param.metavar or "").strip("[].")))
    names = [*param.opts, *param.secondary_opts] if is_option else [param.name or "arg"]
    return Param(
        names=sorted(names, key=lambda n: (n.startswith("--"), n)) if is_option else names,
        help=_summary(getattr(param, "help", None)) or (param.name or "").replace("_", " "),
        takes_value=not flag,
        choices=choices,
        files=files and not choices,
        repeat=bool(param.multiple) if is_option else param.nargs == -1,
        metavar=(param.metavar or (param.name or "value").upper()).strip("[]."),
    )


def _node(command: Any, path: tuple[str, ...], parent_ctx: Any) -> Node:
    ctx = typer.Context(command, info_name=path[-1], parent=parent_ctx, **(command.context_settings or {}))
    node = Node(path=path, help=_summary(command.short_help or command.help))
    for param in command.get_params(ctx):
        item = _param(param, ctx)
        if item is None:
            continue
        (node.options if param.param_type_name == "option" else node.arguments).append(item)
    node.options.sort(key=lambda p: p.names[-1])
    for name in sorted(getattr(command, "commands", {}) or {}):
        child = command.commands[name]
        if not getattr(child, "hidden", False):
            node.children.append(_node(child, (*path, name), ctx))
    return node


def command_tree(app: typer.Typer | None = None) -> Node:
    if app is None:
        from orbcast.cli import app as cli_app

        app = cli_app
    return _node(typer.main.get_command(app), ("orbcast",), None)


def _valued(node: Node) -> list[str]:
    """Names of the options of ``node`` that take a value."""
    return [name for p in node.options if p.takes_value for name in p.names]


# ----------------------------------------------------------------------------- bash


def _bash_case(name: str, arms: list[tuple[str, str]], args: str = '"$1"') -> list[str]:
    lines = [f"{name}() {{", f"    case {args} in"]
    lines += [f'        "{pattern}") echo "{words}" ;;' for pattern, words in arms if words]
    return [*lines, "    esac", "}", ""]


def render_bash(tree: Node) -> str:
    nodes = tree.walk()

    def sub(n: Node) -> str:
        return " ".join(n.key.split()[1:])

    def values(p: Param) -> str:
        return " ".join(p.choices) if p.choices else "@files" if p.files else ""

    lines = [f"# bash completion for orbcast. {HEADER}", "# Install: source it from ~/.bashrc, or copy it to "
             "~/.local/share/bash-completion/completions/orbcast", ""]  # fmt: skip
    lines += _bash_case(
        "_orbcast_subcommands", [(sub(n), " ".join(c.path[-1] for c in n.children)) for n in nodes]
    )
    lines += _bash_case(
        "_orbcast_options", [(sub(n), " ".join(x for p in n.options for x in p.names)) for n in nodes]
    )
    lines += _bash_case("_orbcast_valued", [(sub(n), " ".join(_valued(n))) for n in nodes])
    lines += _bash_case("_orbcast_values", [(f"{sub(n)}|{x}", values(p)) for n in nodes for p in n.options
                                            if p.takes_value for x in p.names], '"$1|$2"')  # fmt: skip
    lines += _bash_case("_orbcast_arguments", [(sub(n), values(p)) for n in nodes for p in n.arguments[:1]])
    lines += BASH_MAIN.splitlines()
    return "\n".join(lines) + "\n"


BASH_MAIN = r"""_orbcast_reply() {
    if [[ "$1" == "@files" ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$2"))
    elif [[ -n "$1" ]]; then
        COMPREPLY=($(compgen -W "$1" -- "$2"))
    else
        COMPREPLY=()
    fi
}

_orbcast() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local path="" word i skip=0
    [[ "$cur" == "=" ]] && cur=""
    [[ "$prev" == "=" ]] && prev="${COMP_WORDS[COMP_CWORD-2]}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if ((skip)); then
            [[ "$word" == "=" ]] || skip=0
            continue
        fi
        case "$word" in
            -*) [[ " $(_orbcast_valued "$path") " == *" $word "* ]] && skip=1 ;;
            *) [[ " $(_orbcast_subcommands "$path") " == *" $word "* ]] && path="${path:+$path }$word" ;;
        esac
    done
    if [[ "$prev" == -* && " $(_orbcast_valued "$path") " == *" $prev "* ]]; then
        _orbcast_reply "$(_orbcast_values "$path" "$prev")" "$cur"
    elif [[ "$cur" == -* ]]; then
        _orbcast_reply "$(_orbcast_options "$path")" "$cur"
    elif [[ -n "$(_orbcast_subcommands "$path")" ]]; then
        _orbcast_reply "$(_orbcast_subcommands "$path")" "$cur"
    else
        _orbcast_reply "$(_orbcast_arguments "$path")" "$cur"
    fi
    return 0
}

complete -F _orbcast orbcast"""


# ----------------------------------------------------------------------------- zsh


def _zq(text: str) -> str:
    """Text inside a single-quoted zsh word, safe inside an _arguments spec."""
    text = text.replace("[", "(").replace("]", ")").replace(":", " -").replace("\\", "/")
    return text.replace("'", "'\\''")


def _zsh_action(p: Param) -> str:
    if p.choices:
        return "(" + " ".join(p.choices) + ")"
    return "_files" if p.files else " "


def _zsh_specs(node: Node) -> list[str]:
    specs: list[str] = []
    for p in node.options:
        exclude = "*" if p.repeat else (f"({' '.join(p.names)})" if len(p.names) > 1 else "")
        for name in p.names:
            spec = f"{exclude}{name}"
            if p.takes_value:
                spec += ("=" if name.startswith("--") else "+") + f"[{_zq(p.help)}]:{_zq(p.metavar)}:"
                spec += _zsh_action(p)
            else:
                spec += f"[{_zq(p.help)}]"
            specs.append(f"'{spec}'")
    for index, arg in enumerate(node.arguments, 1):
        position = "*" if arg.repeat else str(index)
        specs.append(f"'{position}:{_zq(arg.metavar.lower())}:{_zsh_action(arg)}'")
    return specs


def _zsh_function(node: Node) -> list[str]:
    name = "_" + "_".join(part.replace("-", "_") for part in node.path)
    specs = _zsh_specs(node)
    if not node.children:
        return [
            f"{name}() {{",
            "  _arguments -s \\",
            *(f"    {s} \\" for s in specs),
            "    && return 0",
            "}",
            "",
        ]
    lines = [f"{name}() {{", '  local curcontext="$curcontext" state line', "  typeset -A opt_args",
             "  _arguments -C \\", *(f"    {s} \\" for s in specs),
             "    '1:command:->command' \\", "    '*::argument:->argument' && return 0", "  case $state in",
             "    command)", "      local -a commands", "      commands=("]  # fmt: skip
    lines += [f"        '{child.path[-1]}:{_zq(child.help)}'" for child in node.children]
    lines += ["      )", f"      _describe -t commands '{node.key} command' commands", "      ;;",
              "    argument)", '      curcontext="${curcontext%:*:*}:' + "-".join(node.path) + '-$line[1]:"',
              "      case $line[1] in"]  # fmt: skip
    lines += [f"        {c.path[-1]}) {name}_{c.path[-1].replace('-', '_')} ;;" for c in node.children]
    return [*lines, "      esac", "      ;;", "  esac", "}", ""]


def render_zsh(tree: Node) -> str:
    lines = ["#compdef orbcast", f"# zsh completion for orbcast. {HEADER}",
             "# Install: copy it as _orbcast into a directory on $fpath (before compinit).", ""]  # fmt: skip
    for node in tree.walk():
        lines += _zsh_function(node)
    lines += ['if [[ "$funcstack[1]" == "_orbcast" ]]; then', '  _orbcast "$@"', "else",
              "  compdef _orbcast orbcast", "fi"]  # fmt: skip
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- fish


def _fq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_switch(name: str, arms: list[tuple[str, list[str]]]) -> list[str]:
    lines = [f"function {name}", '    switch "$argv[1]"']
    for pattern, words in arms:
        if words:
            lines += [
                f"        case {_fq(pattern)}",
                "            printf '%s\\n' " + " ".join(map(_fq, words)),
            ]
    return [*lines, "    end", "end", ""]


def render_fish(tree: Node) -> str:
    nodes = tree.walk()

    def sub(n: Node) -> str:
        return " ".join(n.path[1:])

    lines = [f"# fish completion for orbcast. {HEADER}",
             "# Install: copy it to ~/.config/fish/completions/orbcast.fish", ""]  # fmt: skip
    lines += _fish_switch(
        "__orbcast_subcommands", [(sub(n), [c.path[-1] for c in n.children]) for n in nodes]
    )
    lines += _fish_switch("__orbcast_valued", [(sub(n), _valued(n)) for n in nodes])
    lines += FISH_MAIN.splitlines() + ["", "complete -c orbcast -f"]
    for node in nodes:
        cond = f"-n {_fq('__orbcast_at ' + _fq(sub(node)))}"
        for child in node.children:
            lines.append(f"complete -c orbcast {cond} -a {_fq(child.path[-1])} -d {_fq(child.help)}")
        for p in node.options:
            names = " ".join(f"-s {n[1:]}" if not n.startswith("--") else f"-l {n[2:]}" for n in p.names)
            value = ""
            if p.takes_value:
                value = f" -x -a {_fq(' '.join(p.choices))}" if p.choices else " -r -F" if p.files else " -x"
            lines.append(f"complete -c orbcast {cond} {names}{value} -d {_fq(p.help)}")
        for arg in node.arguments[:1]:
            if arg.choices:
                lines.append(f"complete -c orbcast {cond} -a {_fq(' '.join(arg.choices))} -d {_fq(arg.help)}")
            elif arg.files:
                lines.append(f"complete -c orbcast {cond} -F")
    return "\n".join(lines) + "\n"


FISH_MAIN = r"""function __orbcast_path
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l path ''
    set -l skip 0
    for tok in $tokens
        if test $skip -eq 1
            set skip 0
        else if string match -q -- '-*' $tok
            if not string match -q -- '*=*' $tok; and contains -- $tok (__orbcast_valued "$path")
                set skip 1
            end
        else if contains -- $tok (__orbcast_subcommands "$path")
            set path (string trim -- "$path $tok")
        end
    end
    echo $path
end

function __orbcast_at
    set -l path (__orbcast_path)
    test "$path" = "$argv[1]"
end"""


# ----------------------------------------------------------------------------- files


RENDERERS = {"bash": render_bash, "zsh": render_zsh, "fish": render_fish}


def render_all(tree: Node | None = None) -> dict[str, str]:
    """File name -> content, for every shell."""
    tree = tree or command_tree()
    return {FILES[shell]: render(tree) for shell, render in RENDERERS.items()}


def stale(directory: Path) -> list[str]:
    """The completion files in ``directory`` that differ from what the CLI generates now."""
    out = []
    for name, content in render_all().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    rest = [a for a in args if a != "--check"]
    if len(rest) != 1 or rest[0].startswith("-"):
        print("usage: python -m orbcast.completions [--check] DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(rest[0])
    if check:
        names = stale(directory)
        for name in names:
            print(
                f"{directory / name} is out of date with the commands: run `make completions`",
                file=sys.stderr,
            )
        return 1 if names else 0
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in render_all().items():
        (directory / name).write_text(content, encoding="utf-8")
        print(f"wrote {directory / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
