from imgctx.server.run import main

main()
