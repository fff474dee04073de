cwlVersion: v1.2
class: CommandLineTool
doc: Sleeps in the test image until cancelled (the test looks for "sleep 4711").
requirements:
  DockerRequirement: {dockerPull: "localhost/flowdeck-test:bookworm"}
baseCommand: [sleep, "4711"]
inputs: []
outputs: []
