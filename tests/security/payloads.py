"""Hostile inputs the security tests send everywhere: each stands for a class of attack."""

from __future__ import annotations


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """'Billion laughs': under 1 KB of YAML that expands to width**levels scalars."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def alias_bomb_manifest() -> str:
    """An alias bomb shaped like a Kubernetes object, so it reaches past shape checks."""
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n"
            + "data:\n" + "".join(f"  {line}\n" for line in alias_bomb().splitlines()))


def deep_yaml(depth: int = 200) -> str:
    """Flow-style nesting deeper than any real document."""
    return "a: " + "[" * depth + "]" * depth + "\n"


def deep_json(depth: int = 5000) -> str:
    return "[" * depth + "]" * depth


def deep_json_object(depth: int = 2000) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def recursive_yaml() -> str:
    return "a: &x [*x]\n"



def kubeconfig_bomb() -> str:
    """A kubeconfig Fleet would otherwise accept, carrying an alias bomb in its preferences."""
    bomb = "".join(f"  {line}\n" for line in alias_bomb().splitlines())
    return ("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "clusters: [{name: c, cluster: {server: 'https://10.0.0.1:6443'}}]\n"
            "users: [{name: u, user: {token: abc}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
            "preferences:\n" + bomb)
