cwlVersion: v1.2
class: CommandLineTool
doc: Says where it ran; the image (tests' flowdeck-test:bookworm) has no /work nor flowdeck.
requirements:
  DockerRequirement: {dockerPull: "localhost/flowdeck-test:bookworm"}
baseCommand: [sh, -c]
arguments:
  - 'echo "message: $0"; if test -e /work/main; then echo "where: host"; else echo "where: container"; fi; cat /etc/os-release | head -1'
  - $(inputs.message)
inputs:
  message: string
stdout: where.txt
outputs:
  where: {type: File, outputBinding: {glob: where.txt}}
