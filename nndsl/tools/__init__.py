"""Tools around the language: the formatter (`fmt`), Graphviz pictures (`graph`), the Pygments
lexer (`lexer`) and the language server (`lsp`). Wired into the CLI by `commands.register`."""
