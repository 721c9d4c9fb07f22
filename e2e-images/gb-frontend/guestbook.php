<?php
// The guestbook's backend: cmd=set writes to the redis master, any other cmd reads from
// a replica; the answer is JSON.  Hosts come from DNS (redis-master, redis-slave) or,
// with GET_HOSTS_FROM=env, from the services' environment variables.
header('Content-Type: application/json');

function redis_host($service, $env) {
    return getenv('GET_HOSTS_FROM') == 'env' ? getenv($env) : $service;
}

function connect($host) {
    $redis = new Redis();
    try {
        $redis->connect($host, 6379, 5.0);
    } catch (RedisException $e) {
        http_response_code(503);
        print('{"error": "cannot reach ' . $host . '"}');
        exit(0);
    }
    return $redis;
}

if (!isset($_GET['cmd'])) {
    phpinfo();
    exit(0);
}
$key = isset($_GET['key']) ? $_GET['key'] : 'messages';
if ($_GET['cmd'] == 'set') {
    $redis = connect(redis_host('redis-master', 'REDIS_MASTER_SERVICE_HOST'));
    $redis->set($key, isset($_GET['value']) ? $_GET['value'] : '');
    print('{"message": "Updated"}');
} else {
    $redis = connect(redis_host('redis-slave', 'REDIS_SLAVE_SERVICE_HOST'));
    $value = $redis->get($key);
    print('{"data": ' . json_encode($value === false ? '' : $value) . '}');
}
