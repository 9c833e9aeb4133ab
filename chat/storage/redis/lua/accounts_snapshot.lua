-- The lower-case names of every account.
return redis.call('HKEYS', prefix .. 'users')
