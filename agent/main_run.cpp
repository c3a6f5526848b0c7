// tether-run [--agent unix:PATH] --id ID [--require-agent] [--] CMD ARGS...
#include "daemon/agent_main.hpp"

int main(int argc, char** argv) { return tether::agent::daemon::tetherRunMain(argc, argv); }
