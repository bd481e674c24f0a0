#!/usr/bin/env python3
"""kioskctl.1 from swift-argument-parser's `--experimental-dump-help` JSON (what the
GenerateManual plugin reads, without its whole-package build): one page, a section per
subcommand.   kioskctl --experimental-dump-help | Provisioning/manpage.py VERSION > kioskctl.1"""
import json
import sys


def esc(text):
    text = (text or "").replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join(("\\&" + l) if l[:1] in ".'" else l for l in text.splitlines())


def synopsis(arg):
    names = arg.get("names") or []
    pref = arg.get("preferredName") or (names[0] if names else None)
    if arg.get("kind") == "positional":
        s = "<" + arg.get("valueName", "value") + ">"
    else:
        dash = "--" if pref and pref.get("kind") == "long" else "-"
        s = "\\fB" + esc(dash + pref["name"]) + "\\fR"
        if arg.get("kind") == "option":
            s += " <" + esc(arg.get("valueName", "value")) + ">"
    return "[" + s + "]" if arg.get("isOptional") else s


def command(cmd, path, out):
    full = " ".join(path)
    args = [a for a in cmd.get("arguments") or [] if a.get("shouldDisplay", True)]
    out.append('.SS "' + esc(full) + '"' if len(path) > 1 else ".SH SYNOPSIS")
    out.append(".B " + esc(full))
    out.append(" ".join(synopsis(a) for a in args) + (" <subcommand>" if cmd.get("subcommands") else ""))
    out.append(".br")
    if cmd.get("abstract"):
        out.append(".PP\n" + esc(cmd["abstract"]))
    if cmd.get("discussion"):
        out.append(".PP\n" + esc(cmd["discussion"]))
    for a in args:
        names = a.get("names") or []
        label = ", ".join(("--" if n["kind"] == "long" else "-") + n["name"] for n in names) or a.get("valueName", "")
        if a.get("kind") == "option":
            label += " <" + a.get("valueName", "value") + ">"
        out.append(".TP\n\\fB" + esc(label) + "\\fR\n" + esc(a.get("abstract") or ""))
    for sub in cmd.get("subcommands") or []:
        command(sub, path + [sub["commandName"]], out)


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else ""
    cmd = json.load(sys.stdin)["command"]
    name = cmd["commandName"]
    out = ['.TH "%s" 1 "" "%s" "kiosk-agent"' % (name.upper(), esc(version)),
           ".SH NAME", esc(name) + " \\- " + esc(cmd.get("abstract") or "")]
    command(cmd, [name], out)
    out += [".SH SEE ALSO", ".BR kiosk-agent (8),", ".BR journalctl (1)"]
    print("\n".join(out))


main()
