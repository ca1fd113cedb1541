//! `--shard i/n`: one generator's share of a scenario's clients, when several generators load
//! one server together.

/// One of `count` shares of a scenario's clients: client `i` belongs to shard
/// `i % count + 1`. User ids, schedules and contacts are those of the whole scenario, so the
/// shards together send exactly what one generator running every client would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// Whether client `index` runs in this shard.
    pub fn owns(&self, client: usize) -> bool {
        client % self.count == self.index - 1
    }

    /// How many of `clients` this shard owns: those of [`Shard::owns`], counted without
    /// looking at each (progress asks every second, of runs of half a million).
    pub fn clients_of(&self, clients: usize) -> usize {
        (clients + self.count - self.index) / self.count
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a shard: write i/n, 1 <= i <= n, such as 1/2");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn a_shard_counts_the_clients_it_owns() {
        for count in 1..=5 {
            for index in 1..=count {
                let shard = Shard { index, count };
                for clients in 0..=12 {
                    let owned = (0..clients).filter(|&i| shard.owns(i)).count();
                    assert_eq!(shard.clients_of(clients), owned, "{shard} of {clients}");
                }
            }
        }
    }
}
