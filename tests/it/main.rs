mod oracle_rpc;
