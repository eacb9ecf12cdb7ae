//! The Lua scripts: each change to Redis is one script, so one round trip
//! and atomic. Their KEYS and ARGV are written above each.

use redis::Script;

pub(super) struct Scripts {
    pub(super) init: Script,
    pub(super) publish: Script,
    pub(super) replay: Script,
    pub(super) admit: Script,
    pub(super) raise_floor: Script,
    pub(super) topics_under: Script,
    pub(super) report_node: Script,
    pub(super) claim: Script,
    pub(super) release_claim: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            init: Script::new(
                r"
                redis.call('SET', KEYS[1], ARGV[1], 'NX')
                return redis.call('GET', KEYS[1])",
            ),
            // KEYS: epoch, seq, feed, idempotency hash, topic index, then
            //       the stream of each topic (all in one log shard).
            // ARGV: candidate epoch, all the event's topics joined by ',',
            //       body, topic maxlen, feed maxlen, history ttl (ms),
            //       idempotency key ('' for none), '1' if the event spans
            //       shards (its topic entries then name all its topics),
            //       '1' if the log is sharded (a shard never draws an
            //       epoch of its own: one without it lost its data), then
            //       each topic's name.
            publish: Script::new(
                r"
                local epoch = redis.call('GET', KEYS[1])
                if not epoch then
                  if ARGV[9] == '1' then
                    return redis.error_reply('LOST this shard lost its log (a master restarted without its data)')
                  end
                  epoch = ARGV[1]
                  redis.call('SET', KEYS[1], epoch)
                end
                if ARGV[7] ~= '' then
                  local seen = redis.call('HGET', KEYS[4], ARGV[7])
                  if seen then return seen end
                end
                local id = epoch .. '-' .. redis.call('INCR', KEYS[2])
                for i = 6, #KEYS do
                  if ARGV[8] == '1' then
                    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[4], id, 'b', ARGV[3], 't', ARGV[2])
                  else
                    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[4], id, 'b', ARGV[3])
                  end
                  redis.call('PEXPIRE', KEYS[i], ARGV[6])
                  redis.call('ZADD', KEYS[5], 0, ARGV[i + 4])
                end
                redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 't', ARGV[2], 'b', ARGV[3])
                if ARGV[7] ~= '' then
                  redis.call('HSET', KEYS[4], ARGV[7], id)
                  redis.call('PEXPIRE', KEYS[4], ARGV[6])
                end
                return id",
            ),
            // KEYS: topic stream, floor. ARGV: start and end of the range,
            // most entries. Returns {trimmed-through, entries}: the
            // stream's last deleted id, or for a topic with no stream
            // (never used, or expired) the floor.
            replay: Script::new(
                r"
                if redis.call('EXISTS', KEYS[1]) == 0 then
                  return {redis.call('GET', KEYS[2]) or '0', {}}
                end
                local info = redis.call('XINFO', 'STREAM', KEYS[1])
                local trimmed = '0-0'
                for i = 1, #info, 2 do
                  if info[i] == 'max-deleted-entry-id' then trimmed = info[i + 1] end
                end
                return {trimmed, redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])}",
            ),
            // KEYS: the user's connection set. ARGV: now (ms), expiry (ms),
            // member, limit, ttl (ms).
            admit: Script::new(
                r"
                redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
                if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
                  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
                end
                redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
                redis.call('PEXPIRE', KEYS[1], ARGV[5])
                return 1",
            ),
            // KEYS: topic index, floor. ARGV: range start and end (lex),
            // most names, the prefix of topic stream keys. Returns {floor,
            // name, ...}; names whose stream expired leave the index.
            topics_under: Script::new(
                r"
                local names = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
                local out = {redis.call('GET', KEYS[2]) or '0'}
                for _, name in ipairs(names) do
                  if redis.call('EXISTS', ARGV[4] .. name) == 1 then
                    out[#out + 1] = name
                  else
                    redis.call('ZREM', KEYS[1], name)
                  end
                end
                return out",
            ),
            // KEYS: readings hash, expiry set. ARGV: node, reading, ttl
            // (ms). Redis's clock decides expiry, so nodes' clocks need
            // not agree. Returns every live reading.
            report_node: Script::new(
                r"
                local t = redis.call('TIME')
                local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
                redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
                for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
                  redis.call('HDEL', KEYS[1], dead)
                  redis.call('ZREM', KEYS[2], dead)
                end
                return redis.call('HVALS', KEYS[1])",
            ),
            raise_floor: Script::new(
                r"
                local floor = tonumber(redis.call('GET', KEYS[1]) or '0')
                if tonumber(ARGV[1]) > floor then redis.call('SET', KEYS[1], ARGV[1]) end
                return 1",
            ),
            // KEYS: the id's claim hash {u: user, s: session, k: secret,
            // h: holder}. ARGV: user, session, offered secret ('' for
            // none), new secret, holder, ttl (ms). Returns {'fresh'},
            // {'continued', secret} or {'refused'} (see `claims`).
            claim: Script::new(
                r"
                local rec = redis.call('HMGET', KEYS[1], 'u', 's', 'k')
                if rec[3] then
                  local proven = (ARGV[1] ~= '' and rec[1] == ARGV[1])
                    or (ARGV[2] ~= '' and rec[2] == ARGV[2])
                    or (ARGV[3] ~= '' and rec[3] == ARGV[3])
                  if not proven then return {'refused'} end
                  redis.call('HSET', KEYS[1], 'h', ARGV[5])
                  redis.call('PEXPIRE', KEYS[1], ARGV[6])
                  return {'continued', rec[3]}
                end
                redis.call('HSET', KEYS[1], 'u', ARGV[1], 's', ARGV[2], 'k', ARGV[4], 'h', ARGV[5])
                redis.call('PEXPIRE', KEYS[1], ARGV[6])
                return {'fresh'}",
            ),
            // KEYS: the id's claim hash. ARGV: holder, keep (ms).
            release_claim: Script::new(
                r"
                if redis.call('HGET', KEYS[1], 'h') == ARGV[1] then
                  redis.call('PEXPIRE', KEYS[1], ARGV[2])
                end
                return 1",
            ),
        }
    }
}
