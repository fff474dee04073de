"""Snakemake container directives found at submit by tokens, not by running the Snakefile."""

from __future__ import annotations

import pytest

from flowdeck.backends.snakemake import container_lines

RULES = """\
container: "docker://debian:12"

rule a:
    output: "a.txt"
    # container: "a comment does not count"
    container:
        "docker://debian:12"
    shell: "echo 'container: in a string' > {output}"

use rule a as b with:
    containerized: "docker://debian:12"
"""


def test_directives_at_the_top_in_rules_and_in_use_rule_are_found() -> None:
    assert container_lines(RULES) == [1, 6, 11]


@pytest.mark.parametrize(
    "text",
    [
        'rule a:\n    shell: "container: x"\n',
        "# container: x\nrule a:\n    shell: 'true'\n",
        "x = {\n    container: 1,\n}\n",
        "container = 'a variable'\nprint(container)\n",
        "f(container=1)\n",
    ],
)
def test_strings_comments_dict_keys_and_names_are_not_directives(text: str) -> None:
    assert container_lines(text) == []


def test_text_that_does_not_tokenize_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="EOF"):
        container_lines('rule a:\n    shell: """unterminated\n')
