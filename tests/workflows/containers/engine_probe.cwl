cwlVersion: v1.2
class: CommandLineTool
doc: |
  A containerised tool whose expressions (evaluated by cwltool's node, outside the container)
  escape node's vm to the engine's process and read host paths; the container prints what
  they got, then "container: done". Each probe is "NAME: READ <what>" or "NAME: DENIED".
requirements:
  DockerRequirement: {dockerPull: "localhost/flowdeck-test:bookworm"}
  InlineJavascriptRequirement:
    expressionLib:
      - |
        function probe(name, path, list) {
          try {
            var proc = globalThis.constructor.constructor("return process")();
            var fs = proc.getBuiltinModule ? proc.getBuiltinModule("fs") : proc.mainModule.require("fs");
            var got = list ? fs.readdirSync(path).join(" ") : fs.readFileSync(path).toString();
            return name + ": READ " + got.replace(/[\n\0]/g, " ");
          } catch (e) {
            return name + ": DENIED";
          }
        }
baseCommand: [sh, -c, 'for line; do echo "$line"; done; echo "container: done"', probe]
inputs:
  paths: {type: 'string[]'}
arguments:
  - $(probe("other_run", inputs.paths[0], false))
  - $(probe("data_dir", inputs.paths[1], true))
  - $(probe("database", inputs.paths[2], false))
  - $(probe("storage_secret", inputs.paths[3], false))
  - $(probe("service_proc", "/proc/" + inputs.paths[4] + "/cmdline", false))
  - $(probe("service_environ", "/proc/" + inputs.paths[4] + "/environ", false))
stdout: probe.txt
outputs:
  report: {type: stdout}
