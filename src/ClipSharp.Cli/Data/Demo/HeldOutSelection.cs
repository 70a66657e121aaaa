using System.Security.Cryptography;
using System.Text;

namespace ClipSharp.Data.Demo;

/// <summary>An emoji subgroup as a candidate for holding out: its group, name and number of concepts.</summary>
/// <param name="Group">The emoji group, e.g. <c>Animals &amp; Nature</c>.</param>
/// <param name="Subgroup">The subgroup, e.g. <c>animal-mammal</c>.</param>
/// <param name="Concepts">Number of emoji concepts in it.</param>
internal sealed record SubgroupInfo(string Group, string Subgroup, int Concepts);

/// <summary>Rules for choosing the emoji subgroups that are held out of training for the zero-shot split.</summary>
/// <param name="MinSubgroups">Keep adding subgroups until at least this many are chosen…</param>
/// <param name="TargetConcepts">…and at least this many concepts are covered.</param>
/// <param name="MinSize">Smallest subgroup considered (tiny subgroups make poor classes).</param>
/// <param name="MaxSize">Largest subgroup considered (one huge subgroup would dominate the split).</param>
/// <param name="MaxPerGroup">At most this many subgroups from one group, so that training keeps every group.</param>
internal sealed record HeldOutRules(int MinSubgroups = 15, int TargetConcepts = 200, int MinSize = 4, int MaxSize = 30, int MaxPerGroup = 3)
{
    /// <summary>Groups never held out: skin-tone/hair components and flags (flag names test geography, not vision).</summary>
    public IReadOnlySet<string> ExcludedGroups { get; init; } = new HashSet<string>(["Component", "Flags"], StringComparer.Ordinal);
}

/// <summary>Deterministic choice of held-out subgroups.</summary>
internal static class HeldOutSelection
{
    /// <summary>
    /// Orders the eligible subgroups by a seeded SHA-256 of their name (independent of input order and of .NET's
    /// randomised string hashing) and takes them in that order, skipping one that would exceed the per-group cap,
    /// until both <see cref="HeldOutRules.MinSubgroups"/> and <see cref="HeldOutRules.TargetConcepts"/> are met.
    /// The result is sorted by group then subgroup.
    /// </summary>
    public static IReadOnlyList<SubgroupInfo> Choose(IEnumerable<SubgroupInfo> subgroups, int seed, HeldOutRules? rules = null)
    {
        rules ??= new HeldOutRules();
        var candidates = subgroups
            .Where(s => !rules.ExcludedGroups.Contains(s.Group) && s.Concepts >= rules.MinSize && s.Concepts <= rules.MaxSize)
            .DistinctBy(s => (s.Group, s.Subgroup))
            .OrderBy(s => SeededRank(seed, s.Group + "/" + s.Subgroup), StringComparer.Ordinal)
            .ThenBy(s => s.Group, StringComparer.Ordinal).ThenBy(s => s.Subgroup, StringComparer.Ordinal)
            .ToList();
        var chosen = new List<SubgroupInfo>();
        var perGroup = new Dictionary<string, int>(StringComparer.Ordinal);
        int concepts = 0;
        foreach (var s in candidates)
        {
            if (chosen.Count >= rules.MinSubgroups && concepts >= rules.TargetConcepts) break;
            if (perGroup.GetValueOrDefault(s.Group) >= rules.MaxPerGroup) continue;
            chosen.Add(s);
            perGroup[s.Group] = perGroup.GetValueOrDefault(s.Group) + 1;
            concepts += s.Concepts;
        }
        return chosen.OrderBy(s => s.Group, StringComparer.Ordinal).ThenBy(s => s.Subgroup, StringComparer.Ordinal).ToList();
    }

    /// <summary>A stable pseudo-random rank of a name for a seed (hex SHA-256 of "seed:name").</summary>
    public static string SeededRank(int seed, string name) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}:{name}")));

    /// <summary>A stable value in [0, 1) for a name and seed, used for the deterministic validation hold-out.</summary>
    public static double SeededUnit(int seed, string name)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}:{name}"));
        return (BitConverter.ToUInt64(hash, 0) >> 11) / (double)(1UL << 53);
    }
}
