"""Print the configuration table (every VITRINE_* variable) as Markdown for the README."""

from __future__ import annotations

from services.common.config import env_var_table


def main() -> None:
    """Write the table to stdout."""
    print("| variable | type | default |")
    print("|---|---|---|")
    for name, kind, default in env_var_table():
        print(f"| `{name}` | {kind} | `{default}` |")


if __name__ == "__main__":
    main()
