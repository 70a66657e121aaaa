using System.CommandLine;
using ClipSharp.Cli.Commands;

namespace ClipSharp.Cli;

/// <summary>Entry point of the <c>clip</c> command. Each sub-command lives in its own file under Commands/.</summary>
public static class Program
{
    /// <summary>Builds the command tree (also used by tests to run commands in-process).</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("ClipSharp: CLIP (Contrastive Language-Image Pre-training) for .NET");
        foreach (var command in CommandRegistry.All()) root.Subcommands.Add(command);
        return root;
    }

    /// <summary>Runs the CLI; errors are reported on stderr with a non-zero exit code.</summary>
    public static int Main(string[] args)
    {
        var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        try
        {
            var parsed = BuildRoot().Parse(args);
            if (parsed.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?"))
            {
                // A usage error is one line and a pointer to the help, not the whole help page before the error.
                var command = string.Join(' ', ["clip", .. CommandPath(parsed.CommandResult)]);
                Console.Error.WriteLine($"clip: error: {parsed.Errors[0].Message} (see '{command} --help')");
                return 2;
            }
            return parsed.Invoke(config);
        }
        // The library's own errors are all ClipSharpException (bad files and settings, undecodable images, failed
        // collectives); the BCL types cover what the operating system and the runtime's readers report.
        catch (Exception e) when (e is CliException or ClipSharpException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or ArgumentException or NotSupportedException or IOException)
        {
            // ArgumentException appends " (Parameter 'name')", which names our code's parameter, not the user's option.
            string message = e is ArgumentException { ParamName: { } p } ae ? ae.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal) : e.Message;
            Console.Error.WriteLine($"clip: error: {message}");
            return e is CliException ce ? ce.ExitCode : 1;
        }
    }

    static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult result)
    {
        var names = new Stack<string>();
        for (var c = result; c.Parent is System.CommandLine.Parsing.CommandResult parent; c = parent) names.Push(c.Command.Name);
        return names;
    }
}

/// <summary>An error meant for the user: printed as one line on stderr, no stack trace.</summary>
public sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    /// <summary>Process exit code.</summary>
    public int ExitCode { get; } = exitCode;
}
