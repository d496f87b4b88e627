from imgctx.server.commands import main

main()
