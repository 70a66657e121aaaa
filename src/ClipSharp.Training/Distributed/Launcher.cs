using System.Globalization;

namespace ClipSharp.Training.Distributed;

/// <summary>
/// What the environment says about how this process was started: by an MPI launcher (Open MPI's <c>mpirun</c>, which
/// sets <c>OMPI_COMM_WORLD_SIZE</c>/<c>OMPI_COMM_WORLD_RANK</c>; Slurm's <c>srun</c>, which sets <c>SLURM_NTASKS</c>/
/// <c>SLURM_PROCID</c> in a job step; a PMI launcher's <c>PMI_SIZE</c>/<c>PMI_RANK</c>), or on its own.
/// </summary>
/// <param name="Name">The launcher, for messages ("mpirun", "srun", "a PMI launcher").</param>
/// <param name="Rank">The rank the launcher assigned (MPI's own rank is authoritative once it is initialised).</param>
/// <param name="WorldSize">Number of processes the launcher started.</param>
public sealed record Launcher(string Name, int Rank, int WorldSize)
{
    /// <summary>How to start a data-parallel run, for messages.</summary>
    public const string Usage = "start every process with an MPI launcher, e.g. `mpirun -np 2 ./clip train -c run.yaml` on one machine, " +
        "`mpirun -np 8 -H a:4,b:4 ./clip train -c run.yaml` on two, or `srun --mpi=pmix -n 8 ./clip train -c run.yaml` under Slurm (see docs/training.md)";

    /// <summary>The launcher of this process, or null when it runs on its own.</summary>
    /// <exception cref="ArgumentException">A launcher variable is malformed, or torchrun's variables ask for several processes.</exception>
    public static Launcher? Detect() => Detect(Environment.GetEnvironmentVariable);

    /// <summary><see cref="Detect()"/> over any variable source (tests).</summary>
    public static Launcher? Detect(Func<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        Launcher? found =
            Read(env, "mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")
            ?? Read(env, "srun", "SLURM_PROCID", "SLURM_NTASKS", requires: "SLURM_STEP_ID")
            ?? Read(env, "a PMI launcher", "PMI_RANK", "PMI_SIZE");
        if (found is null)
        {
            // torchrun's variables: a torchrun job is not an MPI job.
            if (env("WORLD_SIZE") is { Length: > 0 } w && w.Trim() != "1")
                throw new ArgumentException(
                    $"WORLD_SIZE={w} is set, but ClipSharp no longer reads torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): {Usage}");
            return null;
        }
        return found.WorldSize > 1 ? found : null;
    }

    static Launcher? Read(Func<string, string?> env, string name, string rankVar, string sizeVar, string? requires = null)
    {
        string? rank = env(rankVar), size = env(sizeVar);
        if (string.IsNullOrEmpty(rank) || string.IsNullOrEmpty(size)) return null;
        if (requires is not null && string.IsNullOrEmpty(env(requires))) return null; // an allocation (salloc, sbatch) is not yet a job step
        int r = Parse(rankVar, rank), s = Parse(sizeVar, size);
        if (s < 1 || r >= s) throw new ArgumentException($"{name} set {rankVar}={rank} and {sizeVar}={size}, which do not describe a rank of the job");
        return new Launcher(name, r, s);
    }

    static int Parse(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v : throw new ArgumentException($"environment variable {name}='{value}' is not a non-negative integer");
}
