using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ClipSharp.Training.Distributed;

/// <summary>A collective failed or a rank is gone: one line that says which rank, which collective, and what to do.</summary>
public sealed class DistributedException(string message, Exception? inner = null) : ClipSharpException(message, inner);

/// <summary>
/// The MPI job this process belongs to (<c>MPI_COMM_WORLD</c> of Open MPI): rank, size, and the collectives data-parallel
/// CLIP training needs — sum all-reduce, all-gather, reduce-scatter and broadcast. MPI picks the algorithm (ring, tree,
/// recursive doubling) and the transport (shared memory inside a node, TCP or InfiniBand between nodes).
/// <para>Errors come back as return codes (<c>MPI_ERRORS_RETURN</c> replaces MPI's abort-on-error handler) and are
/// thrown as <see cref="DistributedException"/>. A watchdog ends the process with one line when a collective has
/// waited longer than <see cref="Timeout"/> (a rank hung or stopped); when the launcher terminates the job because
/// another rank died, a SIGTERM handler prints one line saying so. MPI can be initialised once per process, so there
/// is at most one communicator: <see cref="Join"/>.</para>
/// </summary>
public sealed unsafe class Communicator : IDisposable
{
    /// <summary>Default <see cref="Timeout"/>: long enough for rank 0 to validate and checkpoint while the others wait.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    /// <summary>Bytes per <c>MPI_Bcast</c> when a stream is broadcast (MPI counts are 32-bit).</summary>
    public const int BroadcastChunk = 16 << 20;

    readonly MpiLibrary mpi;
    readonly object gate = new();
    readonly Thread watchdog;
    readonly PosixSignalRegistration? sigterm;
    readonly object reportGate = new();
    bool reported, finished, stopping;
    long opStarted; // Stopwatch timestamp of the running collective, 0 when none
    string opName = "";
    long operations;
    long busyTicks;

    Communicator(MpiLibrary mpi, Launcher launcher, int rank, int size, TimeSpan timeout)
    {
        this.mpi = mpi;
        Launcher = launcher;
        Rank = rank;
        WorldSize = size;
        Timeout = timeout;
        Host = mpi.Host();
        LibraryVersion = mpi.Version();
        watchdog = new Thread(Watch) { IsBackground = true, Name = "MPI watchdog" };
        watchdog.Start();
        sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ =>
            Report($"clip: error: rank {Rank}: terminated by {Launcher.Name} (SIGTERM) — another rank failed or the job was cancelled; restart every rank with --resume latest"));
    }

    static Communicator? world;

    /// <summary>
    /// Joins the MPI job this process was started in (<c>MPI_Init_thread</c> on the first call) or returns null when
    /// no MPI launcher started it, or started it alone; a plain <c>clip train</c> needs no MPI.
    /// </summary>
    /// <param name="timeout">How long one collective may wait for the other ranks before this process gives up (null: <see cref="DefaultTimeout"/>).</param>
    /// <exception cref="DistributedException">Open MPI is not installed, or MPI's view of the job disagrees with the launcher's.</exception>
    /// <exception cref="ArgumentException">Malformed launcher variables, or torchrun's variables without an MPI launcher.</exception>
    public static Communicator? Join(TimeSpan? timeout = null)
    {
        if (world is not null) return world;
        var launcher = Launcher.Detect();
        if (launcher is null) return null;
        var t = timeout ?? DefaultTimeout;
        if (t <= TimeSpan.Zero) throw new ArgumentException("the collective timeout must be positive");
        var mpi = MpiLibrary.Load();
        // Open MPI can install back-trace handlers for SIGSEGV, SIGBUS, SIGFPE and SIGILL (opal_signal); .NET turns
        // SIGSEGV into NullReferenceException, so those signals stay the runtime's (4.1 already leaves installed handlers alone).
        MpiLibrary.SetDefaultEnvironment("OMPI_MCA_opal_signal", "");
        int initialised = 0, provided = 0, rank = 0, size = 0;
        Check(mpi, mpi.Initialized(&initialised), "MPI_Initialized", -1);
        if (initialised == 0)
            Check(mpi, mpi.InitThread(null, 0, MpiLibrary.ThreadSerialized, &provided), "MPI_Init_thread", -1);
        Check(mpi, mpi.CommSetErrhandler(mpi.CommWorld, mpi.ErrorsReturn), "MPI_Comm_set_errhandler", -1);
        Check(mpi, mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank", -1);
        Check(mpi, mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size", -1);
        if (size != launcher.WorldSize || rank != launcher.Rank)
            throw new DistributedException(
                $"the environment says {launcher.Name} started rank {launcher.Rank} of {launcher.WorldSize}, but MPI sees rank {rank} of {size}: " +
                (size == 1 ? "the MPI library did not connect to the launcher (under Slurm use `srun --mpi=pmix`; with Open MPI start with its own mpirun)" : "the launcher and the MPI library do not belong together"));
        if (initialised == 0 && provided < MpiLibrary.ThreadSerialized)
            throw new DistributedException($"{MpiLibrary.Path} offers thread level {provided}; ClipSharp needs MPI_THREAD_SERIALIZED (2) or more");
        return world = new Communicator(mpi, launcher, rank, size, t);
    }

    /// <summary>The launcher that started the job.</summary>
    public Launcher Launcher { get; }

    /// <summary>This process, 0 … <see cref="WorldSize"/> − 1. Rank 0 alone reads the resume checkpoint and writes files.</summary>
    public int Rank { get; }

    /// <summary>Number of processes.</summary>
    public int WorldSize { get; }

    /// <summary>This host's name as MPI reports it.</summary>
    public string Host { get; }

    /// <summary>The MPI library's version line.</summary>
    public string LibraryVersion { get; }

    /// <summary>How long one collective may wait before the watchdog ends this process.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Collectives run so far.</summary>
    public long Operations => Interlocked.Read(ref operations);

    /// <summary>Time spent inside MPI calls so far (waiting for the other ranks included).</summary>
    public TimeSpan CommunicationTime => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref busyTicks));

    /// <summary>
    /// Set when every rank knows the run failed (a failure rank 0 broadcast during set-up): then all of them can leave
    /// MPI cleanly through <see cref="Finish"/> after reporting it.
    /// </summary>
    public bool FailureShared { get; internal set; }

    /// <summary>Sums <paramref name="values"/> over all ranks, in place.</summary>
    public void AllReduceSum(Span<float> values)
    {
        fixed (float* p = values) AllReduceSum(p, values.Length);
    }

    /// <summary>Sums <paramref name="values"/> over all ranks, in place.</summary>
    public void AllReduceSum(Span<double> values)
    {
        fixed (double* p = values)
        {
            Begin("MPI_Allreduce");
            End(mpi.Allreduce(MpiLibrary.InPlace, (nint)p, values.Length, mpi.Double, mpi.OpSum, mpi.CommWorld));
        }
    }

    /// <summary>Sums <paramref name="count"/> floats at <paramref name="values"/> over all ranks, in place.</summary>
    public void AllReduceSum(float* values, long count)
    {
        for (long at = 0; at < count; at += int.MaxValue)
        {
            int n = (int)Math.Min(int.MaxValue, count - at);
            Begin("MPI_Allreduce");
            End(mpi.Allreduce(MpiLibrary.InPlace, (nint)(values + at), n, mpi.Float, mpi.OpSum, mpi.CommWorld));
        }
    }

    /// <summary>The maximum of <paramref name="value"/> over all ranks.</summary>
    public long AllReduceMax(long value)
    {
        long v = value;
        Begin("MPI_Allreduce");
        End(mpi.Allreduce(MpiLibrary.InPlace, (nint)(&v), 1, mpi.Int64, mpi.OpMax, mpi.CommWorld));
        return v;
    }

    /// <summary>Every rank's <paramref name="count"/> floats at <paramref name="local"/>, concatenated in rank order into <paramref name="all"/> (W × count floats).</summary>
    public void AllGather(float* local, int count, float* all)
    {
        Begin("MPI_Allgather");
        End(mpi.Allgather((nint)local, count, mpi.Float, (nint)all, count, mpi.Float, mpi.CommWorld));
    }

    /// <summary>Every rank's <paramref name="local"/> (all of the same length), concatenated in rank order.</summary>
    public byte[] AllGather(ReadOnlySpan<byte> local)
    {
        var all = new byte[checked(local.Length * WorldSize)];
        int n = local.Length;
        fixed (byte* s = local)
        fixed (byte* d = all)
        {
            Begin("MPI_Allgather");
            End(mpi.Allgather((nint)s, n, mpi.Byte, (nint)d, n, mpi.Byte, mpi.CommWorld));
        }
        return all;
    }

    /// <summary>
    /// Sums W blocks of <paramref name="count"/> floats at <paramref name="all"/> over all ranks and leaves block
    /// <see cref="Rank"/> of the sum in <paramref name="mine"/> (<c>MPI_Reduce_scatter_block</c>).
    /// </summary>
    public void ReduceScatter(float* all, float* mine, int count)
    {
        Begin("MPI_Reduce_scatter_block");
        End(mpi.ReduceScatterBlock((nint)all, (nint)mine, count, mpi.Float, mpi.OpSum, mpi.CommWorld));
    }

    /// <summary>Rank 0's <paramref name="payload"/> on every rank (the others pass null).</summary>
    public byte[] Broadcast(byte[]? payload)
    {
        if (Rank == 0) ArgumentNullException.ThrowIfNull(payload);
        long length = BroadcastLength(Rank == 0 ? payload!.Length : 0);
        if (length < 0 || length > Array.MaxLength) throw new DistributedException($"rank 0 announced a broadcast of {length} bytes");
        var data = Rank == 0 ? payload! : new byte[length];
        for (long at = 0; at < length; at += BroadcastChunk)
            BroadcastBytes(data.AsSpan((int)at, (int)Math.Min(BroadcastChunk, length - at)));
        return data;
    }

    /// <summary>
    /// Rank 0's <paramref name="source"/> (read to its end) written to every other rank's <paramref name="target"/>,
    /// in <see cref="BroadcastChunk"/>-byte broadcasts, so payloads of any size pass without being held in memory.
    /// </summary>
    public void BroadcastStream(Stream? source, Stream? target)
    {
        if (Rank == 0) ArgumentNullException.ThrowIfNull(source);
        else ArgumentNullException.ThrowIfNull(target);
        long remaining = BroadcastLength(Rank == 0 ? source!.Length - source.Position : 0);
        if (remaining < 0) throw new DistributedException($"rank 0 announced a stream of {remaining} bytes");
        var chunk = new byte[(int)Math.Min(BroadcastChunk, Math.Max(remaining, 1))];
        while (remaining > 0)
        {
            int n = (int)Math.Min(chunk.Length, remaining);
            if (Rank == 0) source!.ReadExactly(chunk, 0, n);
            BroadcastBytes(chunk.AsSpan(0, n));
            if (Rank != 0) target!.Write(chunk, 0, n);
            remaining -= n;
        }
    }

    long BroadcastLength(long length)
    {
        Span<byte> buf = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(buf, length);
        BroadcastBytes(buf);
        return BinaryPrimitives.ReadInt64LittleEndian(buf);
    }

    void BroadcastBytes(Span<byte> data)
    {
        int n = data.Length;
        fixed (byte* p = data)
        {
            Begin("MPI_Bcast");
            End(mpi.Bcast((nint)p, n, mpi.Byte, 0, mpi.CommWorld));
        }
    }

    /// <summary>Waits until every rank has reached this point.</summary>
    public void Barrier()
    {
        Begin("MPI_Barrier");
        End(mpi.Barrier(mpi.CommWorld));
    }

    /// <summary>
    /// Checks that every rank passed the same <paramref name="digest"/> (a hash of what must agree); throws naming the
    /// first rank that differs and <paramref name="what"/>. Every rank sees every digest, so all of them throw alike
    /// (<see cref="FailureShared"/>).
    /// </summary>
    public void Agree(ReadOnlySpan<byte> digest, string what)
    {
        var all = AllGather(digest);
        for (int r = 0; r < WorldSize; r++)
            if (!all.AsSpan(r * digest.Length, digest.Length).SequenceEqual(all.AsSpan(0, digest.Length)))
            {
                FailureShared = true;
                throw new DistributedException($"rank {r} differs from rank 0 in {what}");
            }
    }

    /// <summary>
    /// Starts one MPI call: takes the lock (MPI_THREAD_SERIALIZED: one call at a time, from any thread) and shows the
    /// call to the watchdog. Every Begin is followed by <see cref="End"/> with the call's return code; the calls
    /// themselves are native and do not throw.
    /// </summary>
    void Begin(string name)
    {
        Monitor.Enter(gate);
        if (finished)
        {
            Monitor.Exit(gate);
            throw new ObjectDisposedException(nameof(Communicator), "MPI has been finalised");
        }
        opName = name;
        Interlocked.Exchange(ref opStarted, Stopwatch.GetTimestamp());
    }

    void End(int rc)
    {
        string name = opName;
        long started = Interlocked.Exchange(ref opStarted, 0);
        Interlocked.Add(ref busyTicks, Stopwatch.GetTimestamp() - started);
        operations++;
        Monitor.Exit(gate);
        Check(mpi, rc, name, Rank);
    }

    static void Check(MpiLibrary mpi, int rc, string name, int rank)
    {
        if (rc == MpiLibrary.Success) return;
        string who = rank >= 0 ? $"rank {rank}: " : "";
        throw new DistributedException(
            $"{who}{name} failed: {mpi.Describe(rc)} — a rank stopped, crashed or cannot be reached; restart every rank with --resume latest");
    }

    void Watch()
    {
        var poll = TimeSpan.FromMilliseconds(Math.Clamp(Timeout.TotalMilliseconds / 20, 50, 1000));
        lock (reportGate)
        {
            while (!stopping)
            {
                Monitor.Wait(reportGate, poll);
                long started = Interlocked.Read(ref opStarted);
                if (started == 0 || Stopwatch.GetElapsedTime(started) <= Timeout) continue;
                Report($"clip: error: rank {Rank}: {opName} has waited {Timeout.TotalSeconds:0.#} s for the other ranks (a rank hung, " +
                       "was stopped or is far behind; --dist-timeout sets the limit); stopping. Restart every rank with --resume latest");
                // The main thread is inside MPI and cannot be interrupted: leave at once; the launcher ends the others.
                ExitNow(1);
            }
        }
    }

    /// <summary>
    /// Prints <paramref name="line"/> on stderr unless this process already reported a failure (so a rank says one
    /// thing, whichever of the error path, the watchdog and SIGTERM gets there first).
    /// </summary>
    public void Report(string line)
    {
        lock (reportedGate)
        {
            if (reported) return;
            reported = true;
            Console.Error.WriteLine(line);
            Console.Error.Flush();
        }
    }

    readonly object reportedGate = new();

    /// <summary>Leaves the job cleanly (<c>MPI_Finalize</c>); every rank must call it. Without it, disposing leaves MPI
    /// unfinalised and the launcher ends the job when this process exits.</summary>
    public void Finish()
    {
        if (finished) return;
        Begin("MPI_Finalize");
        int rc = mpi.Finalize();
        finished = true;
        End(rc);
        StopWatchdog();
    }

    void StopWatchdog()
    {
        lock (reportGate)
        {
            stopping = true;
            Monitor.PulseAll(reportGate);
        }
    }

    [DllImport("libc", EntryPoint = "_exit")]
    static extern void ExitNow(int status);

    /// <inheritdoc />
    public void Dispose()
    {
        StopWatchdog();
        sigterm?.Dispose();
    }
}
