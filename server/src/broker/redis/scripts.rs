//! The Lua scripts: each change to Redis is one script, so one round trip
//! and atomic. Their KEYS and ARGV are written above each.

use redis::Script;

/// The history's budget, shared by `publish` and `tidy` (which pass the
/// same KEYS and ARGV in the same places). Per log shard: `hot` (topic →
/// its last publish, ms), `bytes` (topic → what its history holds: its
/// events' bytes plus a cost per event and per topic, as the memory log
/// counts) and `total` (the sum). A topic's oldest events go past its
/// count or bytes (down to 99 %, so trims come in batches); past the
/// shard's bytes, the topics idle longest go whole (down to 90 %), the
/// floor raised to their last id so a resume from before it hears of the
/// gap. Keys of other topics are named from the prefixes in ARGV: they
/// share the shard's hash tag.
const BUDGET_LUA: &str = r"
                local NOW, TTL = tonumber(ARGV[10]), tonumber(ARGV[6])
                local MAX_EVENTS, TOPIC_BYTES = tonumber(ARGV[4]), tonumber(ARGV[13])
                local SHARD_BYTES = tonumber(ARGV[14])
                local EVENT_COST, TOPIC_COST = tonumber(ARGV[15]), tonumber(ARGV[16])
                local STREAMS, IDEMS = ARGV[17], ARGV[18]
                local function forget(name)
                  local b = tonumber(redis.call('HGET', KEYS[6], name) or '0')
                  redis.call('HDEL', KEYS[6], name)
                  redis.call('ZREM', KEYS[5], name)
                  redis.call('ZREM', KEYS[4], name)
                  if b ~= 0 then redis.call('DECRBY', KEYS[7], b) end
                end
                local function tidy(limit)
                  local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', NOW - TTL, 'LIMIT', 0, limit)
                  for _, name in ipairs(old) do
                    if redis.call('EXISTS', STREAMS .. name) == 0 then forget(name) end
                  end
                end
                local function trim(stream, name, b, len)
                  local own = TOPIC_COST + #name
                  if len <= MAX_EVENTS and b - own <= TOPIC_BYTES then return 0 end
                  local want_len = MAX_EVENTS - math.floor(MAX_EVENTS / 100)
                  local want_bytes = TOPIC_BYTES - math.floor(TOPIC_BYTES / 100)
                  local freed = 0
                  while len > 0 and (len > want_len or b - own - freed > want_bytes) do
                    local ids = {}
                    for _, e in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', 32)) do
                      if len <= want_len and b - own - freed <= want_bytes then break end
                      local size = EVENT_COST
                      for j = 2, #e[2], 2 do size = size + #e[2][j] end
                      ids[#ids + 1] = e[1]
                      freed = freed + size
                      len = len - 1
                    end
                    if #ids == 0 then break end
                    redis.call('XDEL', stream, unpack(ids))
                  end
                  redis.call('HINCRBY', KEYS[6], name, -freed)
                  return freed
                end
                local function shed(keep, total)
                  if total <= SHARD_BYTES then return end
                  local target = SHARD_BYTES - math.floor(SHARD_BYTES / 10)
                  for _ = 1, 64 do
                    if total <= target then return end
                    local victim = redis.call('ZRANGE', KEYS[5], 0, 0)[1]
                    if not victim or keep[victim] then return end
                    local stream = STREAMS .. victim
                    if redis.call('EXISTS', stream) == 1 then
                      local info = redis.call('XINFO', 'STREAM', stream)
                      for i = 1, #info, 2 do
                        if info[i] == 'last-generated-id' then
                          local seq = tonumber(string.match(info[i + 1], '%-(%d+)$') or '0')
                          if seq > tonumber(redis.call('GET', KEYS[8]) or '0') then
                            redis.call('SET', KEYS[8], seq)
                          end
                        end
                      end
                    end
                    redis.call('DEL', stream, IDEMS .. victim)
                    forget(victim)
                    total = tonumber(redis.call('GET', KEYS[7]) or '0')
                  end
                end
";

pub(super) struct Scripts {
    pub(super) init: Script,
    pub(super) publish: Script,
    pub(super) tidy: Script,
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
            // KEYS: epoch, seq, feed, topic index, `hot`, `bytes`, `total`,
            //       floor (all in one log shard), then each topic's stream
            //       and idempotency hash.
            // ARGV: candidate epoch, all the event's topics joined by ',',
            //       body, max events per topic, feed maxlen, history ttl
            //       (ms), idempotency key ('' for none), '1' if the event
            //       spans shards (its topic entries then name all its
            //       topics), '1' if the log is sharded (a shard never draws
            //       an epoch of its own: one without it lost its data),
            //       now (ms), '1' if it may start topics, this shard's
            //       topic cap, bytes per topic, this shard's bytes, the
            //       cost of an event and of a topic beyond their bytes, the
            //       key prefix of topic streams and of idempotency hashes,
            //       then each topic's name.
            // Returns {id, topics started}, or {'', -1} (a new topic, not
            // allowed), {'', -2} (past the topic cap).
            publish: Script::new(&format!(
                "{BUDGET}{PUBLISH}",
                BUDGET = BUDGET_LUA,
                PUBLISH = r"
                local epoch = redis.call('GET', KEYS[1])
                if not epoch then
                  if ARGV[9] == '1' then
                    return redis.error_reply('LOST this shard lost its log (a master restarted without its data)')
                  end
                  epoch = ARGV[1]
                  redis.call('SET', KEYS[1], epoch)
                end
                local n = (#KEYS - 8) / 2
                if ARGV[7] ~= '' then
                  for i = 1, n do
                    local seen = redis.call('HGET', KEYS[8 + 2 * i], ARGV[7])
                    if seen then return {seen, 0} end
                  end
                end
                -- A topic without entries (no stream, or one emptied by its
                -- byte limit) starts afresh.
                local lens, started = {}, 0
                for i = 1, n do
                  lens[i] = redis.call('XLEN', KEYS[7 + 2 * i])
                  if lens[i] == 0 then started = started + 1 end
                end
                if started > 0 then
                  if ARGV[11] ~= '1' then return {'', -1} end
                  local cap = tonumber(ARGV[12])
                  if redis.call('ZCARD', KEYS[5]) + started > cap then
                    tidy(64)
                    if redis.call('ZCARD', KEYS[5]) + started > cap then return {'', -2} end
                  end
                end
                local id = epoch .. '-' .. redis.call('INCR', KEYS[2])
                local size = EVENT_COST + #ARGV[3]
                if ARGV[8] == '1' then size = size + #ARGV[2] end
                -- What the shard's total gains, written once.
                local gained = 0
                for i = 1, n do
                  local stream, name = KEYS[7 + 2 * i], ARGV[18 + i]
                  if lens[i] == 0 then
                    forget(name)
                    local own = TOPIC_COST + #name
                    redis.call('HSET', KEYS[6], name, own)
                    gained = gained + own
                    redis.call('ZADD', KEYS[4], 0, name)
                  end
                  if ARGV[8] == '1' then
                    redis.call('XADD', stream, id, 'b', ARGV[3], 't', ARGV[2])
                  else
                    redis.call('XADD', stream, id, 'b', ARGV[3])
                  end
                  redis.call('PEXPIRE', stream, ARGV[6])
                  redis.call('ZADD', KEYS[5], NOW, name)
                  local b = redis.call('HINCRBY', KEYS[6], name, size)
                  gained = gained + size - trim(stream, name, b, lens[i] + 1)
                  if ARGV[7] ~= '' then
                    redis.call('HSET', KEYS[8 + 2 * i], ARGV[7], id)
                    redis.call('PEXPIRE', KEYS[8 + 2 * i], ARGV[6])
                  end
                end
                redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 't', ARGV[2], 'b', ARGV[3])
                local mine = {}
                for i = 1, n do mine[ARGV[18 + i]] = true end
                shed(mine, redis.call('INCRBY', KEYS[7], gained))
                return {id, started}",
            )),
            // KEYS and ARGV as `publish`'s first eight and first eighteen
            // (only those the budget reads matter). Drops the records of
            // topics whose history expired (at most 1000). Returns
            // {topics with history, their bytes}.
            tidy: Script::new(&format!(
                "{BUDGET_LUA}
                tidy(1000)
                return {{redis.call('ZCARD', KEYS[5]), tonumber(redis.call('GET', KEYS[7]) or '0')}}"
            )),
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
            // {'continued', secret} or {'refused'} (see `claims`: a
            // session proves only an id no user holds).
            claim: Script::new(
                r"
                local rec = redis.call('HMGET', KEYS[1], 'u', 's', 'k')
                if rec[3] then
                  local proven = (ARGV[1] ~= '' and rec[1] == ARGV[1])
                    or (rec[1] == '' and ARGV[2] ~= '' and rec[2] == ARGV[2])
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
