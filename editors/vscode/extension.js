// Starts `nndsl lsp` (diagnostics as you type, inferred shapes on hover) for .nn files.
// Highlighting comes from syntaxes/nndsl.tmLanguage.json and works without the server.
const vscode = require("vscode");

let client = null;

function activate(context) {
  const command = vscode.workspace.getConfiguration("nndsl").get("server.command") || [];
  if (command.length === 0) {
    return;
  }
  let lc;
  try {
    lc = require("vscode-languageclient/node");
  } catch (e) {
    vscode.window.showWarningMessage("nndsl: run `npm install` in the extension folder for diagnostics and hover");
    return;
  }
  const server = { command: command[0], args: command.slice(1), transport: lc.TransportKind.stdio };
  client = new lc.LanguageClient(
    "nndsl",
    "nndsl language server",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "nndsl" }, { scheme: "untitled", language: "nndsl" }] }
  );
  client.start();
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
