-- wrk script for bench/run.sh's uncached RS256 scenarios: a different token on every request.
--
--   wrk -s bench/jwt-tokens.lua URL -- new FILE
--       cycles through the tokens in FILE (one per line, made by `creds.py make --rs256-tokens N`);
--       with more tokens than the filter's verification cache holds, every request is a miss.
--   wrk -s bench/jwt-tokens.lua URL -- garbage SIGNING_INPUT SIGNATURE_BYTES
--       SIGNING_INPUT ("header.payload", the right key claim) with a fresh random signature of
--       SIGNATURE_BYTES bytes each time (base64url, no padding, canonical last character). The
--       first byte is below 0x80, so that the signature is smaller than any RSA modulus of that
--       size and both filters do the full modular exponentiation before refusing it.
--
-- Sets "Authorization: Bearer <token>" itself (do not pass -H Authorization). When wrk ends it
-- prints one line per HTTP status seen, "status <code> <count>", which run.sh checks.

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local chars = {}
for i = 1, 64 do
    chars[i] = ALPHABET:sub(i, i)
end

local mode, tokens, count, index, prefix, sig_chars
local threads = {}
statuses = {} -- global: done() reads each thread's copy with thread:get

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    mode = args[1]
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    if mode == "new" then
        tokens = {}
        for line in io.lines(args[2]) do
            if line ~= "" then
                tokens[#tokens + 1] = line
            end
        end
        count = #tokens
        assert(count > 0, "no token in " .. args[2])
        -- Threads start at different places in the list.
        index = math.random(count) - 1
    elseif mode == "garbage" then
        prefix = "Bearer " .. args[2] .. "."
        local bytes = tonumber(args[3])
        assert(bytes and bytes % 3 == 1, "SIGNATURE_BYTES must be 3k+1 (256 for RSA-2048)")
        sig_chars = math.floor(bytes / 3) * 4 + 2
    else
        error("usage: -- new FILE | -- garbage SIGNING_INPUT SIGNATURE_BYTES")
    end
end

local function garbage()
    local s = {}
    -- First byte < 0x80: the first character carries its top 6 bits (index 0..31).
    s[1] = chars[math.random(32)]
    for i = 2, sig_chars - 1 do
        s[i] = chars[math.random(64)]
    end
    -- The last character carries 2 bits and 4 zero bits: A, Q, g or w.
    s[sig_chars] = chars[(math.random(4) - 1) * 16 + 1]
    return prefix .. table.concat(s)
end

function request()
    if mode == "new" then
        index = index % count + 1
        wrk.headers["Authorization"] = "Bearer " .. tokens[index]
    else
        wrk.headers["Authorization"] = garbage()
    end
    return wrk.format()
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("statuses") or {}) do
            total[status] = (total[status] or 0) + n
        end
    end
    for status, n in pairs(total) do
        io.write(string.format("status %d %d\n", status, n))
    end
end
