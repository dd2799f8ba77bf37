from mmpipe.pipeline.cli import main

main()
