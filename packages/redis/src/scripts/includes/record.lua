-- Records are strings (since script version 3). A record of the earlier layout (a hash with fields
-- s t c u l f r e x) is still read, converted to this form on the way (see fromHash), and replaced
-- by a string the next time it is written.
--
-- Compact form (binary; integers big-endian; "varint": zigzag LEB128 of a signed integer):
--   byte 1   header 0b01ESPFxx... : 64 + state (0 released/expired tombstone, 1 in-progress,
--            2 completed, 3 failed) + 4 suspect + 8 fingerprint + 16 fingerprint packed + 32 tail
--   2..8     fencing token (56 bits)
--   varint   claimedAt - floor(token / 1000)   (0 for a first claim: the token is its time in µs)
--   varint   updatedAt - claimedAt
--   varint   leaseUntil - claimedAt            (tombstone and in-progress only)
--   fingerprint, when flagged: packed, 17 bytes (the 132 bits of 22 base64url characters, packed by
--            the client), else a varint byte length and the bytes
--   tail     the result (completed) or error code (failed), when flagged: the rest of the value
-- Integer form, for a completed record without fingerprint or result claimed once and finished within
-- 999 ms: the decimal digits of token * 1000 + (updatedAt - claimedAt). Redis keeps such a value as an
-- integer inside the key's object (no string allocation). Its first byte is a digit, never a header.
-- Times are ms of the server clock. Suspect: an owner may have run the handler (the claim was a
-- takeover); kept through releases and expired leases until the record is completed or failed.

-- Integers are written with %d: Lua's default number conversion may use an exponent for large
-- values, and tokens are compared as decimal strings.
local function int(n)
  return string.format('%d', n)
end

local function varint(n)
  local z
  if n >= 0 then z = n * 2 else z = -n * 2 - 1 end
  local out = ''
  while z >= 128 do
    out = out .. string.char(z % 128 + 128)
    z = math.floor(z / 128)
  end
  return out .. string.char(z)
end

local function readVarint(v, pos)
  local z, scale = 0, 1
  while true do
    local b = string.byte(v, pos)
    if not b then error('onceonly: a record value is truncated') end
    pos = pos + 1
    if b < 128 then
      z = z + b * scale
      break
    end
    z = z + (b - 128) * scale
    scale = scale * 128
  end
  if z % 2 == 0 then return z / 2, pos end
  return -(z + 1) / 2, pos
end

-- A record value. `fpFlags` (0, 8 or 24) and `fp` are the fingerprint as stored; `extra` the tail or nil.
-- Decimal texts of the tokens this call has seen (the first claims of a batch share one).
local tokenTexts = {}
local function tokenText(t)
  local text = tokenTexts[t]
  if not text then
    text = int(t)
    tokenTexts[t] = text
  end
  return text
end

local function writeRecord(state, suspect, t, c, u, l, fpFlags, fp, extra)
  local base = math.floor(t / 1000)
  if state == 2 and fpFlags == 0 and not extra and c == base and u >= c and u - c <= 999 then
    local ms = u - c
    if ms < 10 then return tokenText(t) .. '00' .. ms elseif ms < 100 then return tokenText(t) .. '0' .. ms end
    return tokenText(t) .. ms
  end
  local h = 64 + state + fpFlags
  if suspect then h = h + 4 end
  if extra then h = h + 32 end
  local v = string.char(h, math.floor(t / 281474976710656) % 256, math.floor(t / 1099511627776) % 256,
    math.floor(t / 4294967296) % 256, math.floor(t / 16777216) % 256, math.floor(t / 65536) % 256,
    math.floor(t / 256) % 256, t % 256) .. varint(c - base) .. varint(u - c)
  if state <= 1 then v = v .. varint(l - c) end
  v = v .. fp
  if extra then v = v .. extra end
  return v
end

-- The fields of a record value: state, suspect, t (token), c, u, l (state <= 1, else nil), fpFlags,
-- fp, extra (nil when none). Fails the script on a value that is not a record.
local function readRecord(v)
  local h = string.byte(v, 1)
  if h < 64 then
    if not string.find(v, '^[1-9]%d%d%d+$') then error('onceonly: a value is not a record') end
    local t = tonumber(string.sub(v, 1, -4))
    local c = math.floor(t / 1000)
    return 2, false, t, c, c + tonumber(string.sub(v, -3)), nil, 0, '', nil
  end
  if h >= 128 or #v < 10 then error('onceonly: a value is not a record') end
  local b1, b2, b3, b4, b5, b6, b7 = string.byte(v, 2, 8)
  local t = ((((((b1 * 256 + b2) * 256 + b3) * 256 + b4) * 256 + b5) * 256 + b6) * 256) + b7
  local state = h % 4
  local fpFlags = math.floor(h / 8) % 4 * 8
  -- Most deltas are one byte (a zigzag value below 128): read inline, else by readVarint.
  local d, pos
  local b = string.byte(v, 9)
  if b < 128 then d, pos = (b % 2 == 0 and b / 2 or -(b + 1) / 2), 10 else d, pos = readVarint(v, 9) end
  local c = math.floor(t / 1000) + d
  b = string.byte(v, pos)
  if b and b < 128 then d, pos = (b % 2 == 0 and b / 2 or -(b + 1) / 2), pos + 1 else d, pos = readVarint(v, pos) end
  local u = c + d
  local l = nil
  if state <= 1 then
    d, pos = readVarint(v, pos)
    l = c + d
  end
  local from = pos
  if fpFlags == 24 then
    pos = pos + 17
  elseif fpFlags == 8 then
    local length
    length, pos = readVarint(v, pos)
    pos = pos + length
  elseif fpFlags ~= 0 then
    error('onceonly: a value is not a record')
  end
  if pos > #v + 1 then error('onceonly: a record value is truncated') end
  local fp = ''
  if pos > from then fp = string.sub(v, from, pos - 1) end
  local extra = nil
  if math.floor(h / 32) % 2 == 1 then
    extra = string.sub(v, pos)
  elseif pos ~= #v + 1 then
    error('onceonly: a value is not a record')
  end
  return state, math.floor(h / 4) % 2 == 1, t, c, u, l, fpFlags, fp, extra
end

-- A record of the earlier layout (HMGET s t c u l f r e x of a hash), as a value; false when the hash
-- is not a record.
local function fromHash(r)
  local state = tonumber(r[1])
  local t = tonumber(r[2])
  local c = tonumber(r[3])
  if not (state and t and c and state >= 0 and state <= 3) then return false end
  local u = tonumber(r[4]) or c
  local l = tonumber(r[5]) or c
  local fpFlags, fp = 0, ''
  if r[6] then
    fpFlags = 8
    fp = varint(#r[6]) .. r[6]
  end
  local extra = nil
  if state == 2 and r[7] then extra = r[7] elseif state == 3 and r[8] then extra = r[8] end
  return writeRecord(state, r[9] == '1', t, c, u, l, fpFlags, fp, extra)
end

-- The record at `key` as a value (a string), or false when there is none. A hash of the earlier
-- layout is read with one more command and converted; any other type fails the script.
local function fetch(key)
  local v = redis.pcall('GET', key)
  if type(v) ~= 'table' then return v end
  if not (v.err and string.sub(v.err, 1, 9) == 'WRONGTYPE') then error(v) end
  return fromHash(redis.call('HMGET', key, 's', 't', 'c', 'u', 'l', 'f', 'r', 'e', 'x'))
end
